"""``JobCache``: the job control blocks in memory, and when each terminated job may be evicted.

Every non-terminal job of this storage process is cached (registered here or recovered at
startup); a terminated job stays for ``terminated_job_retention_sec`` so that late reports get a
precise "cache stale" answer and state queries skip the database, then it is evicted and
answered from the database.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import attrs

from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.storage.job_control import JobControlBlock


@attrs.define(eq=False)
class JobCache:
    """Cached jobs by id, plus a queue of terminated jobs in the order they ended."""

    _jobs: dict[JobId, JobControlBlock] = attrs.field(factory=dict)
    _terminated: collections.deque[tuple[float, JobId]] = attrs.field(factory=collections.deque)

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobControlBlock]:
        return iter(list(self._jobs.values()))

    def count_by_state(self) -> dict[JobState, int]:
        """How many cached jobs are in each state (states with none are left out)."""
        return dict(collections.Counter(jcb.state for jcb in self._jobs.values()))

    def get(self, job_id: JobId) -> JobControlBlock | None:
        """The cached job, or ``None``."""
        return self._jobs.get(job_id)

    def insert(self, jcb: JobControlBlock) -> None:
        """Cache a job; a job id is cached at most once (ids come from the database)."""
        if jcb.id in self._jobs:
            raise AssertionError(f"job {jcb.id} is already in the job cache")
        if jcb.state.is_terminal:
            raise AssertionError(f"job {jcb.id} is cached while already {jcb.state.value}")
        self._jobs[jcb.id] = jcb

    def mark_terminated(self, job_id: JobId, now: float) -> None:
        """Start the retention period of a job that just reached a terminal state."""
        self._terminated.append((now, job_id))

    def evict_expired(self, now: float, retention: float) -> list[JobId]:
        """Evict every job terminated at least ``retention`` seconds before ``now``."""
        evicted = []
        terminated = self._terminated
        while terminated and now - terminated[0][0] >= retention:
            _, job_id = terminated.popleft()
            jcb = self._jobs.get(job_id)
            if jcb is not None and jcb.state.is_terminal:
                del self._jobs[job_id]
                evicted.append(job_id)
        return evicted
