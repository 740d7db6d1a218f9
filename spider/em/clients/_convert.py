"""Conversions between protobuf messages and the EM's domain values.

Messages from a peer are checked for what proto3 cannot express: a oneof or a sub-message that
must be set. A missing one is a ``ProtocolError`` naming the field.
"""

from __future__ import annotations

from spider.core import TaskId
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)
from spider.em.assignment import Assignment, ExecutionContext, Registration
from spider.em.errors import ProtocolError
from spider.em.ledger import AssignmentRecord
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb


def task_id_to_proto(task_id: TaskId) -> common.TaskId:
    """``common.TaskId`` with the oneof ``kind`` set."""
    if task_id.position is not None:
        return common.TaskId(index=task_id.position)
    if task_id == TaskId.COMMIT:
        return common.TaskId(commit=common.Void())
    return common.TaskId(cleanup=common.Void())


def task_id_from_proto(message: common.TaskId | None, *, operation: str, field: str) -> TaskId:
    """The ``TaskId`` a peer sent; a missing message or ``kind`` is a protocol error."""
    kind = None if message is None else message.WhichOneof("kind")
    if kind == "index":
        assert message is not None
        return TaskId.index(message.index)
    if kind == "commit":
        return TaskId.COMMIT
    if kind == "cleanup":
        return TaskId.CLEANUP
    raise ProtocolError(
        f"{field} has no task id kind (index, commit or cleanup)", operation=operation
    )


def record_to_proto(record: AssignmentRecord) -> scheduler_pb.TaskAssignmentRecord:
    """The acknowledgement as the scheduler expects it."""
    # ``from`` is a Python keyword: the field can only be passed by a keyword dictionary.
    return scheduler_pb.TaskAssignmentRecord(id=record.id, **{"from": record.from_scheduler})


def registration_from_proto(
    response: storage_pb.RegisterExecutionManagerResponse, *, operation: str
) -> Registration:
    """The EM's id and session; session 0 is legal."""
    registration = response.registration
    if not response.HasField("registration"):
        raise ProtocolError("the response has no registration", operation=operation)
    return Registration(
        ExecutionManagerId(registration.execution_manager_id),
        SessionId(registration.session_id),
    )


def assignment_from_proto(
    response: scheduler_pb.NextTaskResponse, *, operation: str
) -> Assignment | None:
    """The assignment in a ``NextTask`` answer, or ``None`` for ``no_task``."""
    which = response.WhichOneof("result")
    if which == "no_task":
        return None
    if which != "assignment":
        raise ProtocolError(
            "the response is neither an assignment nor no_task", operation=operation
        )
    value = response.assignment
    return Assignment(
        id=AssignmentId(value.id),
        scheduler_id=SchedulerId(value.scheduler_id),
        job_id=JobId(value.job_id),
        task_id=task_id_from_proto(value.task_id, operation=operation, field="assignment.task_id"),
        resource_group_id=ResourceGroupId(value.resource_group_id),
        session=SessionId(value.session_id),
    )


def execution_context_from_proto(
    response: storage_pb.RegisterTaskInstanceResponse, *, operation: str
) -> ExecutionContext:
    """Storage's execution context, with every sub-message present and a usable timeout."""
    context = response.execution_context
    if not response.HasField("execution_context"):
        raise ProtocolError("the response has no execution_context", operation=operation)
    if not context.HasField("tdl_context"):
        raise ProtocolError("execution_context has no tdl_context", operation=operation)
    if not context.HasField("timeout_policy"):
        raise ProtocolError("execution_context has no timeout_policy", operation=operation)
    if context.timeout_policy.hard_timeout_ms == 0:
        raise ProtocolError(
            "execution_context.timeout_policy.hard_timeout_ms is 0: the task could not run",
            operation=operation,
        )
    return ExecutionContext(
        task_instance_id=TaskInstanceId(context.task_instance_id),
        package=context.tdl_context.package,
        task_func=context.tdl_context.task_func,
        soft_timeout_ms=context.timeout_policy.soft_timeout_ms,
        hard_timeout_ms=context.timeout_policy.hard_timeout_ms,
        serialized_task_io=context.serialized_task_io,
    )
