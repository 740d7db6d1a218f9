"""Proto <-> domain conversions of the scheduler's own messages."""

from __future__ import annotations

from collections.abc import Sequence

from spider.core.assignment import ConsumedAssignment
from spider.core.ids import AssignmentId, ExecutionManagerId, SchedulerId
from spider.core.task_id import TaskId, TaskKind
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto.spider_py import execution as execution_pb
from spider.scheduler.assignment import IssuedAssignment


def task_id_from_proto(message: common.TaskId | None) -> TaskId | None:
    """The domain ``TaskId``; ``None`` when the message or its kind is missing."""
    kind = None if message is None else message.WhichOneof("kind")
    if kind == "index":
        assert message is not None
        return TaskId.index(message.index)
    if kind == "commit":
        return TaskId.COMMIT
    if kind == "cleanup":
        return TaskId.CLEANUP
    return None


def task_id_to_proto(task_id: TaskId) -> common.TaskId:
    """``common.TaskId`` with its ``kind`` set."""
    if task_id.position is not None:
        return common.TaskId(index=task_id.position)
    if task_id.kind is TaskKind.COMMIT:
        return common.TaskId(commit=common.Void())
    return common.TaskId(cleanup=common.Void())


def record_from_proto(message: scheduler_pb.TaskAssignmentRecord) -> ConsumedAssignment:
    """The acknowledgement ``message`` holds."""
    # ``from`` is a Python keyword: the field is only reachable through getattr.
    from_scheduler: int = getattr(message, "from")
    return ConsumedAssignment(AssignmentId(message.id), SchedulerId(from_scheduler))


def assignment_to_proto(
    assignment: IssuedAssignment, scheduler_id: SchedulerId
) -> scheduler_pb.SchedulerAssignment:
    """The assignment as ``NextTask`` answers it, stamped with the issuing scheduler."""
    entry = assignment.entry
    return scheduler_pb.SchedulerAssignment(
        id=assignment.id,
        resource_group_id=entry.resource_group_id,
        job_id=entry.job_id,
        task_id=task_id_to_proto(entry.task_id),
        scheduler_id=scheduler_id,
        session_id=assignment.session,
    )


def next_tasks_request_from_proto(
    message: execution_pb.NextTasksRequest,
) -> tuple[ExecutionManagerId, list[ConsumedAssignment], float, int]:
    """``NextTasks``' EM, acknowledgements, wait in seconds and most assignments (at least 1)."""
    return (
        ExecutionManagerId(message.execution_manager_id),
        [record_from_proto(record) for record in message.prev_assignments],
        message.wait_time_ms / 1000,
        max(message.max_tasks, 1),
    )


def next_tasks_response_to_proto(
    assignments: Sequence[IssuedAssignment], scheduler_id: SchedulerId
) -> execution_pb.NextTasksResponse:
    """``NextTasks``' answer: empty when nothing was ready in time."""
    return execution_pb.NextTasksResponse(
        assignments=[assignment_to_proto(a, scheduler_id) for a in assignments]
    )
