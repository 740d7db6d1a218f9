"""``TaskDispatchService``: Spider-py's ``NextTasks``, several assignments per long poll.

Not part of Spider's protocol (``protos/spider_py/execution.proto``): Spider-py's execution
managers call it first and fall back to ``NextTask`` when a scheduler answers UNIMPLEMENTED.
It means what ``NextTask`` means, for up to ``max_tasks`` assignments at once.
"""

from __future__ import annotations

import functools

from spider.core.ids import ExecutionManagerId
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import on_undelivered
from spider.scheduler._convert import next_tasks_request_from_proto, next_tasks_response_to_proto
from spider.scheduler.assignment import Assignment
from spider.scheduler.core import SchedulerIdentity
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.em_registry import ExecutionManagerRegistry


class TaskDispatchService(execution_pb.TaskDispatchServiceBase):
    """``NextTasks`` over the same queue and registry as ``SchedulerService``."""

    def __init__(
        self,
        queue: DispatchQueue,
        registry: ExecutionManagerRegistry,
        identity: SchedulerIdentity,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._identity = identity

    async def next_tasks(
        self, next_tasks_request: execution_pb.NextTasksRequest
    ) -> execution_pb.NextTasksResponse:
        """Acknowledge every previous record, wait up to ``wait_time_ms`` for one assignment,
        then add whatever else is queued, up to ``max_tasks``."""
        em_id, records, wait, max_tasks = next_tasks_request_from_proto(next_tasks_request)
        for record in records:
            self._registry.acknowledge(em_id, record)
        first = await self._queue.take(wait)
        if first is None:
            return next_tasks_response_to_proto([], self._identity.scheduler_id)
        # From here to the return, no checkpoint: a cancelled call cannot lose what it took.
        taken = [first]
        while len(taken) < max_tasks and (more := self._queue.take_nowait()) is not None:
            taken.append(more)
        for assignment in taken:
            self._registry.assign(em_id, assignment)
        # An answer that does not leave hands every one of its assignments back at once.
        on_undelivered(functools.partial(self._take_back, em_id, taken))
        return next_tasks_response_to_proto(taken, self._identity.scheduler_id)

    def _take_back(self, em_id: ExecutionManagerId, assignments: list[Assignment]) -> None:
        for assignment in assignments:
            self._registry.take_back(em_id, assignment)
