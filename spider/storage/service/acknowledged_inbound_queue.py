"""``AcknowledgedInboundQueueService``: Spider-py's extension (``spider_py.inbound``), not
Spider's protocol.

Served beside Spider's ``InboundQueueService``; Spider-py's scheduler polls the three lanes
through it, acknowledging each answer in its next poll, so that storage offers the entries of an
answer that never arrived again (``spider.storage.inbound_queue``). It falls back to upstream's
polls against a storage that answers UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Final

from spider.core.ids import SessionId
from spider.proto import storage as storage_pb
from spider.proto.spider_py import inbound as inbound_pb
from spider.storage.errors import BadRequest
from spider.storage.inbound_queue import Lane
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import task_id_to_proto
from spider.storage.state import StorageState

_LANES: Final = {
    inbound_pb.Lane.LANE_TASK: Lane.TASK,
    inbound_pb.Lane.LANE_COMMIT: Lane.COMMIT,
    inbound_pb.Lane.LANE_CLEANUP: Lane.CLEANUP,
}


class AcknowledgedInboundQueueService(inbound_pb.AcknowledgedInboundQueueServiceBase):
    """``PollReadyTasks``: one lane's ready work, each answer leased until acknowledged."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def poll_ready_tasks(
        self, poll_ready_tasks_request: inbound_pb.PollReadyTasksRequest
    ) -> inbound_pb.PollReadyTasksResponse:
        """Settles the lane's previous answer, then polls it as upstream's RPCs do."""
        request = poll_ready_tasks_request
        with answering_storage_errors("PollReadyTasks (acknowledged)"):
            lane = _LANES.get(request.lane)
            if lane is None:
                raise BadRequest(f"unknown inbound lane {request.lane}")
            answer = await self._state.poll_ready_tasks_acknowledged(
                lane,
                request.max_items,
                request.wait_ms,
                SessionId(request.session_id),
                request.acknowledged_batch,
            )
        return inbound_pb.PollReadyTasksResponse(
            session_id=answer.session_id,
            batch=answer.batch,
            tasks=[
                storage_pb.ReadyTask(
                    resource_group_id=task.resource_group_id,
                    job_id=task.job_id,
                    task_id=task_id_to_proto(task.task_id),
                )
                for task in answer.tasks
            ],
        )
