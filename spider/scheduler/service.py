"""``SchedulerService``: Spider's ``scheduler.SchedulerService`` for execution managers."""

from __future__ import annotations

from spider.core.ids import ExecutionManagerId
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.rpc import NotFoundError
from spider.scheduler._convert import assignment_to_proto, record_from_proto
from spider.scheduler.core import SchedulerIdentity
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.em_registry import ExecutionManagerRegistry
from spider.scheduler.errors import ExecutionManagerNotFound
from spider.scheduler.hand_out import hand_out


class SchedulerService(scheduler_pb.SchedulerServiceBase):
    """``NextTask`` (long poll), ``Heartbeat`` and ``Shutdown`` over the core's state."""

    def __init__(
        self,
        queue: DispatchQueue,
        registry: ExecutionManagerRegistry,
        identity: SchedulerIdentity,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._identity = identity

    async def next_task(
        self, next_task_request: scheduler_pb.NextTaskRequest
    ) -> scheduler_pb.NextTaskResponse:
        """Acknowledge the previous assignment, then wait up to ``wait_time_ms`` for one."""
        em_id = ExecutionManagerId(next_task_request.execution_manager_id)
        acknowledged = (
            [record_from_proto(next_task_request.prev_assignment)]
            if next_task_request.HasField("prev_assignment")
            else []
        )
        taken = await hand_out(
            self._queue,
            self._registry,
            em_id,
            acknowledged,
            next_task_request.wait_time_ms / 1000,
            max_tasks=1,
        )
        if not taken:
            return scheduler_pb.NextTaskResponse(no_task=common.Void())
        return scheduler_pb.NextTaskResponse(
            assignment=assignment_to_proto(taken[0], self._identity.scheduler_id)
        )

    async def heartbeat(self, heartbeat_request: scheduler_pb.HeartbeatRequest) -> common.Void:
        """Registers the EM if new and refreshes its liveness; never fails."""
        self._registry.heartbeat(ExecutionManagerId(heartbeat_request.execution_manager_id))
        return common.Void()

    async def shutdown(self, shutdown_request: scheduler_pb.ShutdownRequest) -> common.Void:
        """Acknowledge the listed assignments, forget the EM, reschedule what it still held."""
        em_id = ExecutionManagerId(shutdown_request.execution_manager_id)
        records = [record_from_proto(message) for message in shutdown_request.prev_assignments]
        try:
            self._registry.shutdown(em_id, records)
        except ExecutionManagerNotFound as error:
            raise NotFoundError(str(error)) from error
        return common.Void()
