"""``InboundQueueService``: the scheduler polls the three lanes of ready work."""

from __future__ import annotations

from spider.proto import storage as storage_pb
from spider.storage.inbound_queue import Lane
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import task_id_to_proto
from spider.storage.state import StorageState


class InboundQueueService(storage_pb.InboundQueueServiceBase):
    """One poll RPC per lane; every answer carries the storage session."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def poll_ready_tasks(
        self, poll_ready_tasks_request: storage_pb.PollReadyTasksRequest
    ) -> storage_pb.PollReadyTasksResponse:
        """Ready regular tasks."""
        return await self._poll(Lane.TASK, poll_ready_tasks_request)

    async def poll_ready_commit_tasks(
        self, poll_ready_tasks_request: storage_pb.PollReadyTasksRequest
    ) -> storage_pb.PollReadyTasksResponse:
        """Ready commit tasks."""
        return await self._poll(Lane.COMMIT, poll_ready_tasks_request)

    async def poll_ready_cleanup_tasks(
        self, poll_ready_tasks_request: storage_pb.PollReadyTasksRequest
    ) -> storage_pb.PollReadyTasksResponse:
        """Ready cleanup tasks."""
        return await self._poll(Lane.CLEANUP, poll_ready_tasks_request)

    async def _poll(
        self, lane: Lane, request: storage_pb.PollReadyTasksRequest
    ) -> storage_pb.PollReadyTasksResponse:
        with answering_storage_errors(f"Poll {lane.value} lane"):
            batch = await self._state.poll_ready_tasks(lane, request.max_items, request.wait_ms)
        return storage_pb.PollReadyTasksResponse(
            tasks=storage_pb.ReadyTasks(
                session_id=batch.session_id,
                tasks=[
                    storage_pb.ReadyTask(
                        resource_group_id=task.resource_group_id,
                        job_id=task.job_id,
                        task_id=task_id_to_proto(task.task_id),
                    )
                    for task in batch.tasks
                ],
            )
        )
