"""``open_process_pool``: the executors of an execution manager, one slot per concurrent task.

Synopsis::

    async with open_process_pool(PoolConfig(package_dir=...)) as pool:
        async with trio.open_nursery() as dispatch:
            for slot in pool.slots:
                # each loop: await slot.wait_ready(); poll; outcome = await slot.run(request)
                dispatch.start_soon(dispatch_loop, slot)
        ...
        pool.set_shutdown_deadline(trio.current_time() + grace)   # on SIGTERM
        pool.revoke(instance_ids)   # storage no longer wants these: kill them, report nothing

Every executor runs in its own process group with a forwarder draining its stderr into the EM's
log. Leaving the block closes every executor (``Shutdown``, a bounded wait, a group kill, a
reap) and waits, bounded, for the forwarders to read what is left.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio
from trio_util import AsyncValue

from spider.core.exception_groups import leaves_if_only
from spider.core.ids import TaskInstanceId
from spider.em.pool._executor import REAP_BOUND, ExecutorSpawner
from spider.em.pool._revoked import RevokedBeforeStart
from spider.em.pool.config import PoolConfig
from spider.em.pool.errors import ExecutorSpawnError
from spider.em.pool.slot import ExecutorSlot, SlotStatistics

# Closing a slot is bounded by its executor's shutdown grace and reap; this only adds slack.
_CLOSE_SLACK: Final = 1.0


@attrs.define(eq=False)
class ProcessPool:
    """The open pool: its slots, and the shutdown deadline of the tasks running in them."""

    config: PoolConfig
    slots: Sequence[ExecutorSlot]
    """One per configured executor; run one dispatch loop per slot."""
    _shutdown: AsyncValue[float]
    _revoked_early: RevokedBeforeStart = attrs.field(factory=RevokedBeforeStart)

    @property
    def shutdown_deadline(self) -> float:
        """When running tasks get killed (``trio.current_time()`` terms); ``inf`` if never."""
        deadline: float = self._shutdown.value
        return deadline

    def set_shutdown_deadline(self, deadline: float) -> None:
        """Kill tasks still running at ``deadline`` (e.g. ``trio.current_time() + grace``).

        From then on, each running task's executor is killed and its ``run`` returns
        ``TaskFailed(kind="shutdown")``, for the runtime to report as killed at shutdown; a task
        started after the deadline fails the same way without running. The latest call wins,
        so the deadline can be brought forward (a second signal: ``trio.current_time()``).
        """
        self._shutdown.value = deadline

    def revoke(self, instance_ids: Iterable[TaskInstanceId]) -> list[TaskInstanceId]:
        """Kill the tasks of ``instance_ids`` that are running; return those.

        Each one's ``run`` returns ``TaskFailed(kind="revoked")``, which the EM does not report,
        and its slot goes on with a replacement executor, as after any kill (not counted as a
        crash). An id that no slot runs yet is remembered, so a slot that gets it later does
        not start it; one that already ended is ignored.
        """
        killed: list[TaskInstanceId] = []
        for instance_id in instance_ids:
            if any(slot.revoke(instance_id) for slot in self.slots):
                killed.append(instance_id)
            else:
                self._revoked_early.add(instance_id)
        return killed

    def statistics(self) -> list[SlotStatistics]:
        """Each slot's statistics, in slot order."""
        return [slot.statistics() for slot in self.slots]


@asynccontextmanager
async def open_process_pool(config: PoolConfig) -> AsyncIterator[ProcessPool]:
    """Start ``config.executors`` slots (and their warm spares) and yield the pool.

    Raises ``ExecutorSpawnError`` if an executor cannot start. As with any nursery, an
    exception leaving the block comes out inside an ``ExceptionGroup``.
    """
    opened = False
    try:
        async with trio.open_nursery() as background:
            spawner = ExecutorSpawner(config, background)
            # Each slot races it for its own running task's scope.
            shutdown = AsyncValue(math.inf)
            revoked_early = RevokedBeforeStart()
            slots = tuple(
                ExecutorSlot(index, config, spawner, shutdown, revoked_early)
                for index in range(config.executors)
            )
            try:
                await _open_slots(slots, config.warm_spare)
                opened = True
                yield ProcessPool(config, slots, shutdown, revoked_early)
            finally:
                with trio.move_on_after(
                    config.shutdown_grace + REAP_BOUND + _CLOSE_SLACK, shield=True
                ):
                    async with trio.open_nursery() as closing:
                        for slot in slots:
                            closing.start_soon(slot.close)
                # Forwarders of closed executors stop by themselves within the drain grace;
                # this also bounds any whose executor could not be closed in time.
                background.cancel_scope.deadline = (
                    trio.current_time() + config.stderr_drain_grace + _CLOSE_SLACK
                )
    except BaseExceptionGroup as group:
        error = None if opened else _spawn_error(group)
        if error is None:
            raise
        raise error from group


async def _open_slots(slots: Sequence[ExecutorSlot], warm_spare: bool) -> None:
    """Start every slot's executor and spare at the same time."""
    async with trio.open_nursery() as opening:
        for slot in slots:
            opening.start_soon(slot.open)
            if warm_spare:
                opening.start_soon(slot.open_spare_supply)


def _spawn_error(group: BaseExceptionGroup[BaseException]) -> ExecutorSpawnError | None:
    """One ``ExecutorSpawnError`` for a failed opening, unless something else went wrong too."""
    leaves = leaves_if_only(group, ExecutorSpawnError)
    if leaves is None:
        return None
    more = f" (and {len(leaves) - 1} more executors failed to start)" if len(leaves) > 1 else ""
    return ExecutorSpawnError(f"{leaves[0]}{more}")
