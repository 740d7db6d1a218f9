"""``TaskDispatchService``: Spider-py's ``NextTasks``, several assignments per long poll.

Not part of Spider's protocol (``protos/spider_py/execution.proto``): Spider-py's execution
managers call it first and fall back to ``NextTask`` when a scheduler answers UNIMPLEMENTED.
It means what ``NextTask`` means, for up to ``max_tasks`` assignments at once.
"""

from __future__ import annotations

from spider.proto.spider_py import execution as execution_pb
from spider.scheduler._convert import next_tasks_request_from_proto, next_tasks_response_to_proto
from spider.scheduler.core import SchedulerIdentity
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.em_registry import ExecutionManagerRegistry
from spider.scheduler.hand_out import hand_out


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
        taken = await hand_out(self._queue, self._registry, em_id, records, wait, max_tasks)
        return next_tasks_response_to_proto(taken, self._identity.scheduler_id)
