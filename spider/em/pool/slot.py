"""``ExecutorSlot``: one executor (plus an optional warm spare) running one task at a time."""

from __future__ import annotations

import logging
import math
from typing import Any, Final

import attrs
import trio
from trio_util import AsyncValue, RepeatedEvent

from spider.core.ids import TaskInstanceId
from spider.em import metrics
from spider.em.pool._executor import ExecutorSpawner, PooledExecutor, SpawnReason
from spider.em.pool._forwarder import TaskLabels
from spider.em.pool._revoked import RevokedBeforeStart
from spider.em.pool.config import PoolConfig
from spider.em.pool.errors import PoolClosedError, PoolError, SlotBusyError
from spider.em.pool.outcome import (
    PoolFailureKind,
    TaskFailed,
    TaskOutcome,
    crash_failure,
    hard_timeout_failure,
    outcome_of,
    protocol_failure,
    revoked_failure,
    shutdown_failure,
)
from spider.em.pool.request import TaskRequest
from spider.executor import ExecutorExited, ExecutorProtocolError

LOGGER: Final = logging.getLogger("spider.em.pool")

# Catching up with an executor's stderr after a task takes one read; the bound only matters
# if logging itself is stuck.
_CATCH_UP_BOUND: Final = 1.0


@attrs.frozen
class SlotStatistics:
    """A snapshot of a slot, for logs, metrics and tests."""

    slot: int
    executor_id: int | None
    """The id of the executor that runs the next task; ``None`` while it is being replaced."""
    executor_pid: int | None
    spare_pid: int | None
    """The warm spare's pid once it is ready; ``None`` while it starts, or without a spare."""
    tasks_on_executor: int
    """Tasks the current executor has run (what ``recycle_after_tasks`` counts)."""
    tasks_run: int
    """Tasks this slot has sent to an executor, whatever their outcome."""
    executors_replaced: int
    """Executors discarded after a crash, a timeout, a cancellation, a recycle or a memory limit."""
    busy: bool


@attrs.define(eq=False)
class ExecutorSlot:
    """A place where one task runs at a time, on an executor the slot keeps alive.

    Created by ``open_process_pool``; the EM runs one dispatch loop per slot. ``run`` never
    raises for anything a task or its executor does: every way a task ends is a
    ``TaskOutcome``. After a crash, a hard timeout or a cancellation the executor is killed
    and reaped, and the next task runs on a replacement: the warm spare if there is one (it is
    ready at once), else a freshly started executor, retried with backoff until one starts.
    """

    index: int
    _config: PoolConfig
    _spawner: ExecutorSpawner
    _shutdown: AsyncValue[float]
    """The pool's shutdown deadline (``ProcessPool.set_shutdown_deadline``), shared by all slots."""
    _revoked_early: RevokedBeforeStart
    """Instances revoked before any slot ran them (shared by the pool's slots)."""
    _bounded: tuple[trio.CancelScope, float] | None = attrs.field(default=None, init=False)
    """The slot's scope that the shutdown deadline ends, with its own cap (a hard timeout)."""
    _running: TaskInstanceId | None = attrs.field(default=None, init=False)
    """The instance whose task runs on the executor now (inside ``_bounded``)."""
    _revoked: bool = attrs.field(default=False, init=False)
    """``revoke`` ended the running task's scope."""
    _follower_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)
    _executor: PooledExecutor | None = attrs.field(default=None, init=False)
    _spares: trio.MemoryReceiveChannel[PooledExecutor] | None = attrs.field(
        default=None, init=False
    )
    _supplier_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)
    _spare_pid: int | None = attrs.field(default=None, init=False)
    _spare_ready: RepeatedEvent = attrs.field(factory=RepeatedEvent, init=False)
    _busy: bool = attrs.field(default=False, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _tasks_run: int = attrs.field(default=0, init=False)
    _replaced: int = attrs.field(default=0, init=False)

    @property
    def busy(self) -> bool:
        """Whether a task runs (or is being started) on the slot."""
        return self._busy

    async def run(self, request: TaskRequest) -> TaskOutcome:
        """Run ``request`` on this slot's executor and return how it ended.

        The hard timeout covers the whole round trip to the executor (sending the request
        included), not the wait for a replacement executor. Once the pool's shutdown deadline
        (``ProcessPool.set_shutdown_deadline``) passes, the task is killed and the result is
        ``TaskFailed(kind="shutdown")``. Cancelling the call itself kills the executor and
        re-raises the cancellation. Raises ``SlotBusyError`` if the slot is already running a
        task and ``PoolClosedError`` after the pool closed.
        """
        self._claim()
        try:
            if trio.current_time() >= self._shutdown.value:
                await trio.lowlevel.checkpoint()
                return self._not_run(request)
            executor = self._executor
            if executor is None:
                executor = await self._acquire_before_shutdown()
                if executor is None:
                    return self._not_run(request)
            started = trio.current_time()
            outcome = await self._run_on(executor, request)
            kind = outcome.kind if isinstance(outcome, TaskFailed) else None
            metrics.task_finished(kind, trio.current_time() - started)
            return outcome
        finally:
            self._busy = False

    async def wait_ready(self) -> None:
        """Wait until the slot has an executor ready for its next task.

        After a crash or timeout without a warm spare, this starts the replacement (retrying
        with backoff); a dispatch loop calls it before taking new work so it does not accept
        tasks it cannot start. Raises ``SlotBusyError`` while a task runs.
        """
        self._claim()
        try:
            await self._acquire()
        finally:
            self._busy = False

    async def wait_spare_ready(self) -> None:
        """Wait until the warm spare has started (for tests and diagnostics)."""
        if self._spares is None:
            raise PoolError(f"slot {self.index} has no warm spare: warm_spare is off")
        while self._spare_pid is None:
            self._check_open()
            await self._spare_ready.wait()

    def statistics(self) -> SlotStatistics:
        """The slot's current executor, spare and counters."""
        executor = self._executor
        return SlotStatistics(
            slot=self.index,
            executor_id=None if executor is None else executor.executor_id,
            executor_pid=None if executor is None else executor.pid,
            spare_pid=self._spare_pid,
            tasks_on_executor=0 if executor is None else executor.tasks_run,
            tasks_run=self._tasks_run,
            executors_replaced=self._replaced,
            busy=self._busy,
        )

    def revoke(self, instance_id: TaskInstanceId) -> bool:
        """Kill the running task if it is ``instance_id``; ``run`` then returns
        ``TaskFailed(kind="revoked")`` and the next task runs on a replacement executor.
        Returns whether it was running here."""
        if self._running != instance_id or self._bounded is None:
            return False
        self._revoked = True
        self._bounded[0].cancel(reason=f"storage revoked task instance {instance_id}")
        return True

    async def _run_on(self, executor: PooledExecutor, request: TaskRequest) -> TaskOutcome:
        execute = request.executor_request()
        await self._catch_up(executor)
        # No checkpoint from here until ``_running`` is set: a revocation lands either in
        # ``_revoked_early`` before this check or on the running task after it.
        if self._revoked_early.take(request.task_instance_id):
            LOGGER.info(
                "Task instance revoked by storage before it started; not running it.",
                extra=self._fields(executor, request),
            )
            await trio.lowlevel.checkpoint()
            return revoked_failure(started=False)
        executor.forwarder.attribute_to(
            TaskLabels(request.job_id, request.task_id, request.task_instance_id)
        )
        self._tasks_run += 1
        # One cancel scope for both the hard timeout and the pool's shutdown deadline: a scope
        # costs as much as the rest of the pool's per-task work.
        hard_deadline = trio.current_time() + request.hard_timeout
        scope = self._open_bounded(cap=hard_deadline)
        self._running, self._revoked = request.task_instance_id, False
        try:
            with scope:
                response = await executor.process.execute(execute)
        except ExecutorExited as exc:
            await self._discard(executor, "crashed")
            LOGGER.warning(
                "Task executor crashed.",
                extra={**self._fields(executor, request), "exit_status": exc.returncode},
            )
            return crash_failure(exc.exit_status)
        except ExecutorProtocolError as exc:
            await self._discard(executor, "invalid_reply")
            LOGGER.error(
                "Task executor sent an invalid reply; killed it.",
                extra={**self._fields(executor, request), "error": str(exc)},
            )
            return protocol_failure(exc)
        except BaseException:
            # Cancelled by the caller: the pipes may be mid-frame.
            await self._discard(executor, "cancelled")
            raise
        finally:
            self._bounded = None
            self._running = None
        if scope.cancelled_caught:
            if self._revoked:
                await self._discard(executor, "revoked")
                # Not the task's fault, and not a crash: storage has already decided its task.
                LOGGER.info(
                    "Task instance revoked by storage; killed its executor.",
                    extra=self._fields(executor, request),
                )
                return revoked_failure(started=True)
            if scope.deadline < hard_deadline:  # the shutdown deadline came first
                await self._discard(executor, "shutdown")
                LOGGER.warning("Task killed at shutdown.", extra=self._fields(executor, request))
                return shutdown_failure(started=True)
            await self._discard(executor, "hard_timeout")
            LOGGER.warning(
                "Task hit the hard timeout; killed its executor.",
                extra={**self._fields(executor, request), "hard_timeout_s": request.hard_timeout},
            )
            return hard_timeout_failure(request.hard_timeout)
        executor.tasks_run += 1
        # The task's stderr was written before its reply: tag all of it with the task.
        await self._catch_up(executor)
        executor.forwarder.attribute_to(None)
        outcome = outcome_of(response, self._config.memory_limit_bytes)
        if isinstance(outcome, TaskFailed) and outcome.kind == PoolFailureKind.MEMORY_LIMIT:
            # A process that hit its address-space limit may be left fragmented: start afresh.
            self._retire(executor, "it hit the memory limit", "memory_limit")
        elif executor.tasks_run == self._config.recycle_after_tasks:
            self._retire(executor, f"it ran {executor.tasks_run} tasks", "recycled")
        return outcome

    async def _catch_up(self, executor: PooledExecutor) -> None:
        """Let the forwarder read what the executor wrote so far, if anything (rarely)."""
        if executor.forwarder.has_unread():
            # Shielded, so that a shutdown deadline passing now cannot turn a finished task
            # into a killed one.
            with trio.move_on_after(_CATCH_UP_BOUND, shield=True):
                await executor.forwarder.wait_caught_up()

    async def _acquire_before_shutdown(self) -> PooledExecutor | None:
        """``_acquire`` unless the shutdown deadline passes first (then ``None``)."""
        stop = self._open_bounded(cap=math.inf)
        try:
            with stop:
                return await self._acquire()
        finally:
            self._bounded = None
        return None

    def _open_bounded(self, cap: float) -> trio.CancelScope:
        """The slot's one scope ending at ``cap`` or at the shutdown deadline, whichever is first;
        ``_follow_shutdown_deadline`` moves it while it is ``_bounded``."""
        scope = trio.CancelScope(deadline=min(cap, self._shutdown.value))
        self._bounded = (scope, cap)
        return scope

    async def _follow_shutdown_deadline(self) -> None:
        """Race the pool's shutdown deadline for the slot's own scope, until the slot closes."""
        with self._follower_scope:
            async for deadline in self._shutdown.eventual_values():
                if self._bounded is not None:
                    scope, cap = self._bounded
                    scope.deadline = min(cap, deadline)

    def _not_run(self, request: TaskRequest) -> TaskFailed:
        LOGGER.warning(
            "Task not run: shutting down.", extra={"slot": self.index, **_task_fields(request)}
        )
        return shutdown_failure(started=False)

    async def _acquire(self) -> PooledExecutor:
        executor = self._executor
        if executor is not None:
            return executor
        if self._spares is not None:
            try:
                executor = await self._spares.receive()
            except trio.EndOfChannel:
                raise PoolClosedError(f"slot {self.index} is closed") from None
            LOGGER.info(
                "Promoted the warm spare.",
                extra={
                    "slot": self.index,
                    "executor_id": executor.executor_id,
                    "pid": executor.pid,
                },
            )
        else:
            executor = await self._spawner.spawn_until_started(self.index, SpawnReason.REPLACEMENT)
        self._executor = executor
        return executor

    async def _discard(self, executor: PooledExecutor, reason: str) -> None:
        """Kill a broken or interrupted executor and reap it before anything else happens."""
        metrics.EXECUTOR_REPLACEMENTS.labels(reason).inc()
        self._executor = None
        self._replaced += 1
        await executor.kill()

    def _retire(self, executor: PooledExecutor, why: str, reason: str) -> None:
        """Replace a healthy executor; it shuts down gracefully in the background."""
        metrics.EXECUTOR_REPLACEMENTS.labels(reason).inc()
        self._executor = None
        self._replaced += 1
        LOGGER.info(
            "Retiring executor: %s.",
            why,
            extra={"slot": self.index, "executor_id": executor.executor_id, "pid": executor.pid},
        )
        self._spawner.nursery.start_soon(executor.close)

    async def open(self) -> None:
        """Start the slot's first executor (the pool calls this when it opens)."""
        self._spawner.nursery.start_soon(self._follow_shutdown_deadline)
        self._executor = await self._spawner.spawn(self.index, SpawnReason.START)

    async def open_spare_supply(self) -> None:
        """Start the warm-spare supplier and wait for its first spare (the pool calls this)."""
        send, receive = trio.open_memory_channel[PooledExecutor](0)
        self._spares = receive
        await self._spawner.nursery.start(self._supply_spares, send)

    async def _supply_spares(
        self,
        send: trio.MemorySendChannel[PooledExecutor],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep one started executor waiting for the slot, until the pool closes.

        The first spare must start (its failure fails the pool's opening); later ones are
        retried with backoff. A spare not yet handed over is killed when the supplier stops.
        """
        with self._supplier_scope:
            async with send:
                spare = await self._spawner.spawn(self.index, SpawnReason.SPARE)
                task_status.started()
                while True:
                    try:
                        self._spare_pid = spare.pid
                        self._spare_ready.set()
                        await send.send(spare)
                    except BaseException:
                        await spare.kill()
                        raise
                    finally:
                        self._spare_pid = None
                    spare = await self._spawner.spawn_until_started(self.index, SpawnReason.SPARE)

    async def close(self) -> None:
        """Stop the spare supplier and end the executor, gracefully unless a task is running.

        The pool calls this when it closes; the slot cannot be used afterwards.
        """
        self._closed = True
        self._supplier_scope.cancel(reason="the process pool is closing")
        self._follower_scope.cancel(reason="the process pool is closing")
        self._spare_ready.set()
        executor, self._executor = self._executor, None
        if executor is None:
            await trio.lowlevel.checkpoint()
        elif self._busy:
            await executor.kill()
        else:
            await executor.close()

    def _claim(self) -> None:
        self._check_open()
        if self._busy:
            raise SlotBusyError(
                f"slot {self.index} is already running a task: run one dispatch loop per slot"
            )
        self._busy = True

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError(
                f"slot {self.index} is closed: use the pool inside its `async with` block"
            )

    def _fields(self, executor: PooledExecutor, request: TaskRequest) -> dict[str, Any]:
        return {
            "slot": self.index,
            "executor_id": executor.executor_id,
            "pid": executor.pid,
            **_task_fields(request),
        }


def _task_fields(request: TaskRequest) -> dict[str, Any]:
    return {
        "job_id": request.job_id,
        "task_id": str(request.task_id),
        "task_instance_id": request.task_instance_id,
    }
