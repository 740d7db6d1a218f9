"""``EmLife``: one registration of the execution manager with storage, from its id to its end.

Storage declares an EM dead once it has not heard from it for its cutoff (the EM was paused by
SIGSTOP, or cut off from storage by the network) and reschedules every task instance it held.
Nothing the EM holds is lost then, so by default (``on_declared_dead: rejoin``) it registers
again under a new id and goes on with the same executors: each registration is one life, with
its own id, session tracker, consumed-assignment ledger, heartbeats, reporter and dispatch
loops, over the one process pool the runtime keeps open for all of them
(docs/execution-manager.md, "Declared dead"). With ``on_declared_dead: exit`` the EM stops with
status 1 instead, as upstream Spider's does, for an outside supervisor to start a fresh one.

Work of an ended life is stale, since storage has fenced its instances: its running tasks are
killed (their slots start the next task on a fresh executor), its outcomes not yet reported are
dropped, its prefetched assignments go back to the scheduler, and its ledger is acknowledged
with ``Shutdown`` under the old id.
"""

from __future__ import annotations

import enum
import logging
from typing import Final

import attrs
import trio

from spider.core import SessionTracker
from spider.core.errors import FatalError
from spider.core.exception_groups import leaves
from spider.core.ids import ExecutionManagerId
from spider.core.supervision import supervise
from spider.em.assignment import Registration
from spider.em.errors import DeclaredDead, ExecutionManagerError
from spider.em.ledger import AssignmentLedger
from spider.em.liveness import LivenessLoop
from spider.em.ports import LivenessClient, SchedulerClient
from spider.em.scheduler_heartbeat import scheduler_heartbeat_loop
from spider.em.stop import EmStop

LOGGER: Final = logging.getLogger("spider.em")


class OnDeclaredDead(enum.StrEnum):
    """What the EM does when storage declares it dead (``on_declared_dead``)."""

    REJOIN = "rejoin"
    """Register again under a new id, keeping the executors."""
    EXIT = "exit"
    """Stop with status 1 (upstream Spider's behaviour), for a supervisor to restart it."""


@attrs.define(eq=False)
class EmLife:
    """One registration: its id, what is tied to the id, and whether storage ended it."""

    registration: Registration
    liveness: LivenessLoop
    ledger: AssignmentLedger = attrs.field(factory=AssignmentLedger)
    """Acknowledgements of assignments handed to this id: they go out under this id only."""
    death: DeclaredDead | None = attrs.field(default=None, init=False)
    """Storage's answer that ended this life, once it came."""
    _lost: trio.Event = attrs.field(factory=trio.Event, init=False)
    _heartbeats: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)

    @classmethod
    def begin(
        cls, registration: Registration, client: LivenessClient, heartbeat_interval: float
    ) -> EmLife:
        """The life that ``registration`` starts (call right after it, inside Trio)."""
        tracker = SessionTracker(registration.session)
        liveness = LivenessLoop(client, registration.em_id, tracker, heartbeat_interval)
        return cls(registration, liveness)

    @property
    def em_id(self) -> ExecutionManagerId:
        """The id storage gave this life."""
        return self.registration.em_id

    @property
    def tracker(self) -> SessionTracker:
        """The storage session as this life's liveness loop sees it."""
        return self.liveness.tracker

    @property
    def lost(self) -> bool:
        """True once storage declared this life's id dead (and the EM rejoins)."""
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        """Wait until storage declared this life's id dead."""
        await self._lost.wait()

    def silent_for(self) -> float:
        """Seconds since storage last accepted a heartbeat of this life."""
        return trio.current_time() - self.liveness.answered_at

    def end_heartbeats(self) -> None:
        """Stop this life's heartbeats to storage and the scheduler (before its ``Shutdown``)."""
        self._heartbeats.cancel(reason=f"execution manager {self.em_id}'s life has ended")

    async def keep_alive(
        self,
        scheduler: SchedulerClient,
        scheduler_heartbeat_interval: float,
        on_declared_dead: OnDeclaredDead,
        stop: EmStop,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Heartbeat to storage and the scheduler under this life's id until ``end_heartbeats``.

        Storage declaring the id dead ends the life (``on_declared_dead: rejoin``) or forces the
        stop with the error; any other fatal answer forces the stop.
        """
        with self._heartbeats:
            async with trio.open_nursery() as beats:
                await beats.start(self._liveness_until_fatal, on_declared_dead, stop)
                await beats.start(
                    supervise,
                    "scheduler heartbeat",
                    scheduler_heartbeat_loop,
                    scheduler,
                    self.em_id,
                    scheduler_heartbeat_interval,
                )
                task_status.started()

    async def _liveness_until_fatal(
        self,
        on_declared_dead: OnDeclaredDead,
        stop: EmStop,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """``supervise`` the liveness loop; a fatal error it raises forces the stop and is
        raised once the EM has wound down (by ``run_execution_manager``), instead of cancelling
        its siblings now."""
        try:
            await supervise(
                "storage liveness heartbeat",
                self._liveness,
                on_declared_dead,
                task_status=task_status,
            )
        except Exception as raised:
            fatal: list[ExecutionManagerError] = [
                leaf
                for leaf in leaves(raised)
                if isinstance(leaf, ExecutionManagerError) and isinstance(leaf, FatalError)
            ]
            if not fatal:
                raise
            error = fatal[0]
            if isinstance(error, DeclaredDead):
                exiting = DeclaredDead(
                    f"{error}; it stops so that its supervisor starts a fresh one "
                    "(on_declared_dead: exit)"
                )
                exiting.__cause__ = error.__cause__
                LOGGER.error(str(exiting), extra={"em_id": self.em_id})
                error = exiting
            stop.fail(error, force=True)

    async def _liveness(
        self,
        on_declared_dead: OnDeclaredDead,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The liveness loop; with ``rejoin``, storage declaring the id dead ends the life and
        this waits for ``end_heartbeats`` instead of raising (nothing went wrong)."""
        try:
            await self.liveness.run(task_status=task_status)
        except DeclaredDead as dead:
            if on_declared_dead is not OnDeclaredDead.REJOIN:
                raise
            self.death = dead
            self._lost.set()
        await trio.sleep_forever()
