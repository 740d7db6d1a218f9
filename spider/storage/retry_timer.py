"""``RetryTimer``: failed tasks waiting out their retry delay (``RetryDelay`` in the policy).

Storage keeps a task that failed with retries left out of the inbound queue until its delay has
passed; ``run`` then hands it back (``JobLifecycle.offer_retry``), which offers it to schedulers
again unless the job or the task has moved on meanwhile. The waits live only in memory: after a
storage restart, recovery offers every ready task at once.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import NoReturn

import attrs
import trio
import trio_util

from spider.core.ids import JobId
from spider.core.task_id import TaskId


@attrs.define(eq=False)
class RetryTimer:
    """A heap of (due time, job, task); ``run`` fires each at its time, in order."""

    _due: list[tuple[float, int, JobId, TaskId]] = attrs.field(factory=list, init=False)
    _order: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _earlier: trio_util.RepeatedEvent = attrs.field(factory=trio_util.RepeatedEvent, init=False)

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, at: float, job_id: JobId, task_id: TaskId) -> None:
        """Fire ``(job_id, task_id)`` at ``at`` (``trio.current_time`` seconds)."""
        heapq.heappush(self._due, (at, next(self._order), job_id, task_id))
        if self._due[0][0] == at:
            self._earlier.set()  # the loop sleeps until a later time: wake it

    async def run(
        self,
        fire: Callable[[JobId, TaskId], None],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Call ``fire`` for each entry once its time has come, forever."""
        task_status.started()
        while True:
            now = trio.current_time()
            while self._due and self._due[0][0] <= now:
                _, _, job_id, task_id = heapq.heappop(self._due)
                fire(job_id, task_id)
            next_at = self._due[0][0] if self._due else math.inf
            with trio.move_on_at(next_at):
                await self._earlier.wait()
