"""``ExecutionManagerRegistry``: which EMs are alive and what each holds unacknowledged.

An assignment is *outstanding* from the moment ``NextTask`` hands it out until the EM
acknowledges it (on its next ``NextTask`` or in ``Shutdown``). An EM that sends ``Shutdown``,
or that has not been heard from for ``dead_em_cutoff`` seconds, is removed and its outstanding
assignments go back to the core to be decided again (with new ids). There is no per-assignment
timeout: a long task stays outstanding for as long as its EM heartbeats
(docs/upstream.md#the-schedulers-em-registry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import Final, NoReturn

import attrs
import trio

from spider.core.assignment import ConsumedAssignment
from spider.core.ids import AssignmentId, ExecutionManagerId, SchedulerId
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.errors import ExecutionManagerNotFound

LOGGER: Final = logging.getLogger("spider.scheduler.em_registry")


@attrs.define(eq=False)
class _ExecutionManager:
    last_update: float
    outstanding: dict[AssignmentId, IssuedAssignment] = attrs.field(factory=dict)


@attrs.define(eq=False)
class ExecutionManagerRegistry:
    """Liveness and outstanding assignments per EM.

    ``reschedule`` receives the outstanding assignments of every EM that is removed.
    ``own_ids`` holds the scheduler ids this process registered under: an acknowledgement
    issued by any other scheduler is ignored (it is about an assignment we never made).
    """

    dead_em_cutoff: float
    reschedule: Callable[[IssuedAssignment], None]
    own_ids: Collection[SchedulerId]
    _ems: dict[ExecutionManagerId, _ExecutionManager] = attrs.field(factory=dict)

    def __contains__(self, em_id: ExecutionManagerId) -> bool:
        return em_id in self._ems

    def counts(self) -> tuple[int, int]:
        """EMs known, and their outstanding assignments. Safe to call from another thread (the
        metrics server's): it reads copies."""
        ems = list(self._ems.values())
        return len(ems), sum(len(em.outstanding) for em in ems)

    def outstanding(self, em_id: ExecutionManagerId) -> list[IssuedAssignment]:
        """The EM's unacknowledged assignments, oldest first (empty for an unknown EM)."""
        em = self._ems.get(em_id)
        return [] if em is None else list(em.outstanding.values())

    def _touch(self, em_id: ExecutionManagerId) -> _ExecutionManager:
        now = trio.current_time()
        em = self._ems.get(em_id)
        if em is None:
            em = self._ems[em_id] = _ExecutionManager(now)
            LOGGER.info("execution manager %d registered", em_id, extra={"em_id": em_id})
        em.last_update = now
        return em

    def heartbeat(self, em_id: ExecutionManagerId) -> None:
        """``Heartbeat``: registers the EM if new and refreshes its liveness."""
        self._touch(em_id)

    def assign(self, em_id: ExecutionManagerId, assignment: IssuedAssignment) -> None:
        """Record an assignment handed to the EM as outstanding."""
        self._touch(em_id).outstanding[assignment.id] = assignment

    def take_back(self, em_id: ExecutionManagerId, assignment: IssuedAssignment) -> bool:
        """The ``NextTask`` response carrying ``assignment`` never left: reschedule it now.

        Otherwise it would stay outstanding, the EM unaware of it, for as long as the EM lives
        (upstream's gap, docs/upstream.md#the-schedulers-em-registry). True if it was still
        outstanding.
        """
        em = self._ems.get(em_id)
        if em is None or em.outstanding.pop(assignment.id, None) is None:
            return False
        LOGGER.warning(
            "assignment %d for execution manager %d was not delivered; rescheduling it",
            assignment.id,
            em_id,
            extra={"em_id": em_id, "assignment_id": assignment.id},
        )
        self.reschedule(assignment)
        return True

    def acknowledge(self, em_id: ExecutionManagerId, record: ConsumedAssignment) -> bool:
        """The EM took responsibility for an assignment; True if it was outstanding.

        Acknowledgements are idempotent (the EM may send one twice); unknown ones are only
        logged, since the EM may have been declared dead and its work rescheduled meanwhile.
        """
        if record.issued_by not in self.own_ids:
            LOGGER.warning(
                "ignoring an acknowledgement from EM %d of assignment %d issued by scheduler %d",
                em_id,
                record.id,
                record.issued_by,
                extra={"em_id": em_id, "assignment_id": record.id},
            )
            return False
        em = self._ems.get(em_id)
        if em is None or em.outstanding.pop(record.id, None) is None:
            LOGGER.debug(
                "EM %d acknowledged assignment %d, which is not outstanding",
                em_id,
                record.id,
                extra={"em_id": em_id, "assignment_id": record.id},
            )
            return False
        em.last_update = trio.current_time()
        return True

    def shutdown(self, em_id: ExecutionManagerId, records: Iterable[ConsumedAssignment]) -> int:
        """``Shutdown``: acknowledge ``records``, remove the EM, reschedule the rest.

        Returns how many assignments were rescheduled; ``ExecutionManagerNotFound`` for an EM
        that is not registered.
        """
        for record in records:
            self.acknowledge(em_id, record)
        if em_id not in self._ems:
            raise ExecutionManagerNotFound("execution manager not found")
        return self._remove(em_id, "it shut down")

    def _remove(self, em_id: ExecutionManagerId, reason: str) -> int:
        em = self._ems.pop(em_id)
        for assignment in em.outstanding.values():
            self.reschedule(assignment)
        LOGGER.info(
            "execution manager %d removed (%s); rescheduling %d assignment(s)",
            em_id,
            reason,
            len(em.outstanding),
            extra={"em_id": em_id, "rescheduled": len(em.outstanding)},
        )
        return len(em.outstanding)

    def remove_dead(self) -> list[ExecutionManagerId]:
        """Remove every EM not heard from for ``dead_em_cutoff`` seconds."""
        now = trio.current_time()
        dead = [
            em_id for em_id, em in self._ems.items() if now - em.last_update >= self.dead_em_cutoff
        ]
        for em_id in dead:
            self._remove(em_id, f"silent for {self.dead_em_cutoff:g} s")
        return dead

    async def track_liveness(
        self, interval: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Check for dead EMs every ``interval`` seconds, for as long as the scheduler runs.

        One sweep over all EMs rather than upstream's task per EM: the same cutoff, and no
        task to spawn or cancel when an EM comes or goes.
        """
        task_status.started()
        next_check = trio.current_time() + interval
        while True:
            await trio.sleep_until(next_check)
            self.remove_dead()
            # A late wakeup does not cause a burst of catch-up sweeps.
            next_check = max(next_check + interval, trio.current_time())
