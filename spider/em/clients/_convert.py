"""Conversions between protobuf messages and the EM's domain values.

Messages from a peer are checked for what proto3 cannot express: a oneof or a sub-message that
must be set. A missing one is a ``ProtocolError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence

from spider.core import TaskId
from spider.core.assignment import ConsumedAssignment
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)
from spider.em.assignment import Assignment, ExecutionContext, Registration, ReportTarget
from spider.em.errors import ProtocolError
from spider.em.pool import TaskOutcome, TaskSucceeded
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb


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


def record_to_proto(record: ConsumedAssignment) -> scheduler_pb.TaskAssignmentRecord:
    """The acknowledgement as the scheduler expects it."""
    # ``from`` is a Python keyword: the field can only be passed by a keyword dictionary.
    return scheduler_pb.TaskAssignmentRecord(id=record.id, **{"from": record.issued_by})


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
    return _assignment(response.assignment, operation=operation)


def _assignment(value: scheduler_pb.SchedulerAssignment, *, operation: str) -> Assignment:
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
    if not response.HasField("execution_context"):
        raise ProtocolError("the response has no execution_context", operation=operation)
    return _execution_context(response.execution_context, operation=operation)


def _execution_context(context: storage_pb.ExecutionContext, *, operation: str) -> ExecutionContext:
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


def next_task_request_to_proto(
    em_id: ExecutionManagerId, record: ConsumedAssignment | None, wait_ms: int
) -> scheduler_pb.NextTaskRequest:
    """``NextTask``, acknowledging ``record`` when there is one (unset otherwise)."""
    if record is None:
        return scheduler_pb.NextTaskRequest(execution_manager_id=em_id, wait_time_ms=wait_ms)
    return scheduler_pb.NextTaskRequest(
        execution_manager_id=em_id, prev_assignment=record_to_proto(record), wait_time_ms=wait_ms
    )


def next_tasks_request_to_proto(
    em_id: ExecutionManagerId, records: Sequence[ConsumedAssignment], wait_ms: int, max_tasks: int
) -> execution_pb.NextTasksRequest:
    """``NextTasks`` acknowledging ``records``."""
    return execution_pb.NextTasksRequest(
        execution_manager_id=em_id,
        prev_assignments=[record_to_proto(record) for record in records],
        wait_time_ms=wait_ms,
        max_tasks=max_tasks,
    )


def assignments_from_proto(
    response: execution_pb.NextTasksResponse, *, max_tasks: int, operation: str
) -> list[Assignment]:
    """The assignments of a ``NextTasks`` answer; more than asked for is a protocol error."""
    if len(response.assignments) > max_tasks:
        raise ProtocolError(
            f"{len(response.assignments)} assignments answered, at most {max_tasks} asked for",
            operation=operation,
        )
    return [_assignment(value, operation=operation) for value in response.assignments]


def report_success_to_proto(
    target: ReportTarget, outputs: bytes
) -> storage_pb.ReportTaskSuccessRequest:
    """``ReportTaskSuccess`` with the output wire frame verbatim."""
    return storage_pb.ReportTaskSuccessRequest(
        job_id=target.job_id,
        task_id=task_id_to_proto(target.task_id),
        task_instance_id=target.task_instance_id,
        execution_manager_id=target.em_id,
        session_id=target.session,
        serialized_outputs=outputs,
    )


def report_failure_to_proto(
    target: ReportTarget, message: str
) -> storage_pb.ReportTaskFailureRequest:
    """``ReportTaskFailure`` with a readable message."""
    return storage_pb.ReportTaskFailureRequest(
        job_id=target.job_id,
        task_id=task_id_to_proto(target.task_id),
        task_instance_id=target.task_instance_id,
        execution_manager_id=target.em_id,
        session_id=target.session,
        error_message=message,
    )


def report_outcomes_to_proto(
    reports: Sequence[tuple[ReportTarget, TaskOutcome]],
) -> execution_pb.ReportTaskOutcomesRequest:
    """``ReportTaskOutcomes``: each outcome as its single report would carry it."""
    outcomes = []
    for target, outcome in reports:
        if isinstance(outcome, TaskSucceeded):
            item = execution_pb.TaskOutcome(
                success=report_success_to_proto(target, outcome.outputs)
            )
        else:
            item = execution_pb.TaskOutcome(
                failure=report_failure_to_proto(target, outcome.message)
            )
        outcomes.append(item)
    return execution_pb.ReportTaskOutcomesRequest(outcomes=outcomes)


def item_statuses_from_proto(
    response: execution_pb.ReportTaskOutcomesResponse, *, count: int, operation: str
) -> list[tuple[int, str]]:
    """``(code, message)`` per item, one per outcome sent."""
    if len(response.statuses) != count:
        raise ProtocolError(
            f"{len(response.statuses)} statuses answered for {count} outcomes",
            operation=operation,
        )
    return [(status.code, status.message) for status in response.statuses]


def registration_to_proto(
    assignment: Assignment, em_id: ExecutionManagerId
) -> storage_pb.RegisterTaskInstanceRequest:
    """``RegisterTaskInstance`` of ``assignment`` in its own session."""
    return storage_pb.RegisterTaskInstanceRequest(
        job_id=assignment.job_id,
        task_id=task_id_to_proto(assignment.task_id),
        execution_manager_id=em_id,
        session_id=assignment.session,
    )


def registrations_to_proto(
    assignments: Sequence[Assignment], em_id: ExecutionManagerId
) -> execution_pb.RegisterTaskInstancesRequest:
    """``RegisterTaskInstances``: one registration per assignment."""
    return execution_pb.RegisterTaskInstancesRequest(
        registrations=[registration_to_proto(assignment, em_id) for assignment in assignments]
    )


def registration_results_from_proto(
    response: execution_pb.RegisterTaskInstancesResponse, *, count: int, operation: str
) -> list[ExecutionContext | tuple[int, str] | ProtocolError]:
    """Per registration: the execution context, ``(code, message)`` of its failure, or the
    ``ProtocolError`` that makes its answer unusable."""
    if len(response.results) != count:
        raise ProtocolError(
            f"{len(response.results)} results answered for {count} registrations",
            operation=operation,
        )
    results: list[ExecutionContext | tuple[int, str] | ProtocolError] = []
    for result in response.results:
        which = result.WhichOneof("result")
        if which == "error":
            results.append((result.error.code, result.error.message))
            continue
        if which != "execution_context":
            results.append(
                ProtocolError("the response has no execution_context", operation=operation)
            )
            continue
        try:
            results.append(_execution_context(result.execution_context, operation=operation))
        except ProtocolError as error:
            results.append(error)
    return results
