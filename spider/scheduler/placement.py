"""``RoundRobinPlacement``: which buffered task goes out next.

Pure, synchronous state; the core (``core.py``) feeds it storage's entries and reschedules and
drains it into the dispatch queue. The rules, upstream's (docs/upstream.md#round-robin-placement)
with one difference given below:

* Every buffered (job, task) is buffered once; duplicates are skipped until it is dispatched.
* Commit and cleanup entries make their job *finalizing*: its regular tasks are dropped, now
  and when they are delivered again, until the job has been finalizing for
  ``finalizing_job_expiration`` seconds.
* At most ``active_job_capacity`` jobs are active; later ones wait, in arrival order, as pending
  jobs and are promoted when an active job is retired.
* The cursor walks the ring ``[commit lane, cleanup lane, job, job...]``: the commit lane gives
  up to ``active_job_capacity`` commit tasks, the cleanup lane one cleanup task, a job one of its
  tasks; a job found empty is retired and the next pending job joins the end of the ring.

One deliberate difference from upstream: a retired job's ring slot is removed in place rather
than swap-removed, so the remaining jobs keep their arrival order (strict rotation holds after
retirements too).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterator
from typing import TypeAlias

import attrs

from spider.core.ids import AssignmentId, JobId, ResourceGroupId, SessionId
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId, TaskKind
from spider.scheduler.assignment import NO_SESSION, IssuedAssignment


class TerminationLane(enum.Enum):
    """The two ring slots that are not jobs."""

    COMMIT = "commit"
    CLEANUP = "cleanup"


RingSlot: TypeAlias = TerminationLane | JobId


@attrs.define(eq=False)
class _JobTasks:
    resource_group_id: ResourceGroupId
    tasks: deque[TaskId] = attrs.field(factory=deque)


@attrs.define(eq=False)
class AssignmentIssuer:
    """Assignment ids: a counter per scheduler process.

    Starts at 1, not upstream's 0: an id of 0 cannot be told apart from an unset field in
    proto3, and acknowledgements carry nothing else.
    """

    _next: int = 1

    def issue(self) -> AssignmentId:
        """A fresh id."""
        issued = self._next
        self._next += 1
        return AssignmentId(issued)


@attrs.define(eq=False)
class RoundRobinPlacement:
    """The round-robin policy's state for one storage session."""

    active_job_capacity: int
    finalizing_job_expiration: float
    issuer: AssignmentIssuer = attrs.field(factory=AssignmentIssuer)
    session: SessionId = NO_SESSION
    _buffered: set[tuple[JobId, TaskId]] = attrs.field(factory=set)
    _active: dict[JobId, _JobTasks] = attrs.field(factory=dict)
    _pending: dict[JobId, _JobTasks] = attrs.field(factory=dict)  # insertion-ordered FIFO
    _commit_ready: deque[ReadyTask] = attrs.field(factory=deque)
    _cleanup_ready: deque[ReadyTask] = attrs.field(factory=deque)
    _finalizing: dict[JobId, float] = attrs.field(factory=dict)  # job -> since; ordered FIFO
    _ring: list[RingSlot] = attrs.field(
        factory=lambda: [TerminationLane.COMMIT, TerminationLane.CLEANUP]
    )
    _cursor: int = 0

    # --- what the core reads ---------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Loaded but not yet dispatched tasks, of every kind."""
        return len(self._buffered)

    @property
    def buffered_commit(self) -> int:
        """Buffered commit tasks."""
        return len(self._commit_ready)

    @property
    def buffered_cleanup(self) -> int:
        """Buffered cleanup tasks."""
        return len(self._cleanup_ready)

    @property
    def active_jobs(self) -> list[JobId]:
        """Active jobs in ring order."""
        return [slot for slot in self._ring if not isinstance(slot, TerminationLane)]

    @property
    def pending_jobs(self) -> list[JobId]:
        """Pending jobs in arrival order."""
        return list(self._pending)

    def is_finalizing(self, job_id: JobId) -> bool:
        """True while the job's regular tasks are being dropped."""
        return job_id in self._finalizing

    def next_expiry(self) -> float:
        """When ``retire_expired`` next has work (``math.inf`` for never)."""
        for since in self._finalizing.values():
            return since + self.finalizing_job_expiration
        return math.inf

    # --- session ---------------------------------------------------------------------------

    def start_session(self, session: SessionId) -> None:
        """Forget everything of the old session: buffers, jobs, finalizing set, ring."""
        self.session = session
        self._buffered.clear()
        self._active.clear()
        self._pending.clear()
        self._commit_ready.clear()
        self._cleanup_ready.clear()
        self._finalizing.clear()
        self._ring = [TerminationLane.COMMIT, TerminationLane.CLEANUP]
        self._cursor = 0

    # --- loading ---------------------------------------------------------------------------

    def load(self, entry: ReadyTask, now: float) -> bool:
        """Buffer one entry by its kind; False when it was skipped (duplicate or gated)."""
        if entry.task_id.kind is TaskKind.INDEX:
            return self._load_ready(entry)
        return self._load_termination(entry, now)

    def _load_termination(self, entry: ReadyTask, now: float) -> bool:
        key = (entry.job_id, entry.task_id)
        if key in self._buffered:
            return False
        self._buffered.add(key)
        self._finalizing.setdefault(entry.job_id, now)
        if entry.task_id.kind is TaskKind.COMMIT:
            self._commit_ready.append(entry)
        else:
            self._cleanup_ready.append(entry)
        if entry.job_id in self._active:
            self._retire(entry.job_id)
        elif entry.job_id in self._pending:
            self._discard_tasks(entry.job_id, self._pending.pop(entry.job_id))
        return True

    def _load_ready(self, entry: ReadyTask) -> bool:
        job_id = entry.job_id
        key = (job_id, entry.task_id)
        if job_id in self._finalizing or key in self._buffered:
            return False
        self._buffered.add(key)
        job = self._active.get(job_id) or self._pending.get(job_id)
        if job is None:
            job = _JobTasks(entry.resource_group_id)
            if len(self._active) < self.active_job_capacity:
                self._active[job_id] = job
                self._ring.append(job_id)
            else:
                self._pending[job_id] = job
        job.tasks.append(entry.task_id)
        return True

    def _discard_tasks(self, job_id: JobId, job: _JobTasks) -> None:
        for task_id in job.tasks:
            self._buffered.discard((job_id, task_id))

    def _retire(self, job_id: JobId) -> None:
        """Drop an active job (and its buffered tasks) and promote the next pending job."""
        self._discard_tasks(job_id, self._active.pop(job_id))
        index = self._ring.index(job_id)
        del self._ring[index]
        if index < self._cursor:
            self._cursor -= 1
        if self._cursor >= len(self._ring):
            self._cursor = 0
        if self._pending:
            promoted = next(iter(self._pending))
            self._active[promoted] = self._pending.pop(promoted)
            self._ring.append(promoted)

    def retire_expired(self, now: float) -> int:
        """Forget finalizing jobs older than the expiration; their tasks are accepted again."""
        expired = 0
        while self._finalizing:
            job_id, since = next(iter(self._finalizing.items()))
            if now - since < self.finalizing_job_expiration:
                break
            del self._finalizing[job_id]
            expired += 1
        return expired

    # --- deciding --------------------------------------------------------------------------

    def decide(self, free_slots: int) -> list[IssuedAssignment]:
        """Up to ``free_slots`` assignments, in round-robin order, each with a fresh id."""
        decided: list[IssuedAssignment] = []
        while len(decided) < free_slots and self._buffered:
            slot = self._ring[self._cursor]
            if slot is TerminationLane.COMMIT:
                room = min(free_slots - len(decided), self.active_job_capacity)
                decided.extend(self._issue(entry) for entry in _pop(self._commit_ready, room))
            elif slot is TerminationLane.CLEANUP:
                decided.extend(self._issue(entry) for entry in _pop(self._cleanup_ready, 1))
            else:
                job = self._active[slot]
                if not job.tasks:
                    # Retired only when the cursor finds it empty: its next tasks may be on
                    # their way from storage (upstream #344).
                    self._retire(slot)
                    continue  # the cursor already points at the next slot
                task_id = job.tasks.popleft()
                decided.append(self._issue(ReadyTask(job.resource_group_id, slot, task_id)))
            self._cursor = (self._cursor + 1) % len(self._ring)
        return decided

    def _issue(self, entry: ReadyTask) -> IssuedAssignment:
        self._buffered.discard((entry.job_id, entry.task_id))
        return IssuedAssignment(self.issuer.issue(), entry, self.session)


def _pop(fifo: deque[ReadyTask], count: int) -> Iterator[ReadyTask]:
    for _ in range(min(count, len(fifo))):
        yield fifo.popleft()
