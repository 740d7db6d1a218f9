"""Upstream's status mapping and the protobuf conversions of the EM's clients.

The mapping: docs/upstream.md#status-codes.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from spider.core import TaskId
from spider.core.ids import U64_MAX, ExecutionManagerId
from spider.em.clients._convert import (
    assignment_from_proto,
    execution_context_from_proto,
    registration_from_proto,
    task_id_from_proto,
    task_id_to_proto,
)
from spider.em.clients._mapping import liveness_error, scheduler_error, storage_error
from spider.em.errors import (
    CacheStaleAnswer,
    EmClientError,
    IllegalId,
    InvalidInput,
    MarkedDead,
    ProtocolError,
    ServerError,
    StaleSessionAnswer,
    TransportError,
)
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.rpc import RpcError, Status, error_for_status
from spider.storage.errors import CacheStale, EmDead, StaleReason, StorageError, grpc_status

STORAGE = {
    Status.NOT_FOUND: StaleSessionAnswer,
    Status.FAILED_PRECONDITION: CacheStaleAnswer,
    Status.INVALID_ARGUMENT: InvalidInput,
    Status.UNAVAILABLE: TransportError,
    Status.DEADLINE_EXCEEDED: TransportError,
    Status.INTERNAL: ServerError,
    Status.UNKNOWN: ServerError,
    Status.OUT_OF_RANGE: ServerError,
}
LIVENESS = {
    Status.FAILED_PRECONDITION: MarkedDead,
    Status.INVALID_ARGUMENT: IllegalId,
    Status.INTERNAL: TransportError,
    Status.UNAVAILABLE: TransportError,
    Status.NOT_FOUND: TransportError,
    Status.UNAUTHENTICATED: ServerError,  # Spider-py's cluster credential
}
SCHEDULER = {
    Status.UNAVAILABLE: TransportError,
    Status.DEADLINE_EXCEEDED: TransportError,
    Status.INTERNAL: ServerError,
    Status.NOT_FOUND: ServerError,
}


def _rpc_error(status: Status) -> RpcError:
    return error_for_status(status, f"peer says {status.name}")


@pytest.mark.parametrize(
    ("mapping", "table"),
    [(storage_error, STORAGE), (liveness_error, LIVENESS), (scheduler_error, SCHEDULER)],
)
def test_status_codes_map_like_upstream_and_keep_the_message(
    mapping: object, table: dict[Status, type[EmClientError]]
) -> None:
    for status, expected in table.items():
        error = mapping(_rpc_error(status), "Op")  # type: ignore[operator]
        assert type(error) is expected, status
        assert error.message == f"peer says {status.name}"
        assert str(error) == f"Op: {expected.__name__}: peer says {status.name}"


task_ids = st.one_of(
    st.integers(0, U64_MAX).map(TaskId.index), st.sampled_from([TaskId.COMMIT, TaskId.CLEANUP])
)


@given(task_ids)
def test_task_ids_round_trip_through_the_wire(task_id: TaskId) -> None:
    wire = task_id_to_proto(task_id).SerializeToString()
    assert task_id_from_proto(common.TaskId.FromString(wire), operation="x", field="f") == task_id


def test_a_task_id_without_a_kind_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"assignment\.task_id has no task id kind"):
        task_id_from_proto(common.TaskId(), operation="NextTask", field="assignment.task_id")


def _wire(message: Message) -> bytes:
    return message.SerializeToString()


def test_next_task_responses_convert_or_fail_as_protocol_errors() -> None:
    no_task = scheduler_pb.NextTaskResponse.FromString(
        _wire(scheduler_pb.NextTaskResponse(no_task=common.Void()))
    )
    assert assignment_from_proto(no_task, operation="NextTask") is None
    response = scheduler_pb.NextTaskResponse(
        assignment=scheduler_pb.SchedulerAssignment(
            id=4,
            resource_group_id=7,
            job_id=42,
            task_id=common.TaskId(commit=common.Void()),
            scheduler_id=3,
            session_id=0,
        )
    )
    got = assignment_from_proto(
        scheduler_pb.NextTaskResponse.FromString(_wire(response)), operation="NextTask"
    )
    assert got is not None
    assert (got.id, got.scheduler_id, got.job_id, got.task_id, got.resource_group_id) == (
        4,
        3,
        42,
        TaskId.COMMIT,
        7,
    )
    assert got.session == 0
    with pytest.raises(ProtocolError, match="neither an assignment nor no_task"):
        assignment_from_proto(scheduler_pb.NextTaskResponse.FromString(b""), operation="NextTask")
    no_kind = scheduler_pb.NextTaskResponse(assignment=scheduler_pb.SchedulerAssignment(id=1))
    with pytest.raises(ProtocolError, match="task_id"):
        assignment_from_proto(
            scheduler_pb.NextTaskResponse.FromString(_wire(no_kind)), operation="NextTask"
        )


def _context_response(**fields: object) -> storage_pb.RegisterTaskInstanceResponse:
    context = storage_pb.ExecutionContext(**fields)  # type: ignore[arg-type]
    wire = _wire(storage_pb.RegisterTaskInstanceResponse(execution_context=context))
    return storage_pb.RegisterTaskInstanceResponse.FromString(wire)


def test_execution_contexts_need_every_part_and_a_hard_timeout() -> None:
    tdl = storage_pb.TdlContext(package="pkg", task_func="fn")
    timeouts = storage_pb.TimeoutPolicy(soft_timeout_ms=1000, hard_timeout_ms=5000)
    good = _context_response(
        task_instance_id=9, tdl_context=tdl, timeout_policy=timeouts, serialized_task_io=b"io"
    )
    context = execution_context_from_proto(good, operation="Register")
    assert (context.task_instance_id, context.package, context.task_func) == (9, "pkg", "fn")
    assert (context.soft_timeout_ms, context.hard_timeout_ms) == (1000, 5000)
    assert context.serialized_task_io == b"io"
    cases = {
        "no execution_context": storage_pb.RegisterTaskInstanceResponse.FromString(b""),
        "no tdl_context": _context_response(task_instance_id=1, timeout_policy=timeouts),
        "no timeout_policy": _context_response(task_instance_id=1, tdl_context=tdl),
        "hard_timeout_ms is 0": _context_response(
            task_instance_id=1,
            tdl_context=tdl,
            timeout_policy=storage_pb.TimeoutPolicy(soft_timeout_ms=1),
        ),
    }
    for expected, response in cases.items():
        with pytest.raises(ProtocolError, match=expected):
            execution_context_from_proto(response, operation="Register")


def test_registration_needs_its_registration_and_allows_session_zero() -> None:
    response = storage_pb.RegisterExecutionManagerResponse(
        registration=storage_pb.ExecutionManagerRegistration(execution_manager_id=8)
    )
    got = registration_from_proto(
        storage_pb.RegisterExecutionManagerResponse.FromString(_wire(response)), operation="R"
    )
    assert (got.em_id, got.session) == (8, 0)
    with pytest.raises(ProtocolError, match="no registration"):
        registration_from_proto(
            storage_pb.RegisterExecutionManagerResponse.FromString(b""), operation="R"
        )


def _storage_answer(refusal: StorageError) -> EmClientError:
    """What the EM makes of storage's answer ``refusal`` to a task-instance call."""
    rpc_error = error_for_status(grpc_status(refusal), str(refusal))
    return storage_error(rpc_error, "RegisterTaskInstance")


def test_storage_refusing_a_dead_em_is_marked_dead_not_a_stale_cache() -> None:
    # Both answers are FAILED_PRECONDITION. A stale cache drops the assignment; a dead EM must
    # hand it back (unacknowledged), or the still-ready task is never offered again.
    dead = _storage_answer(EmDead(ExecutionManagerId(3)))
    assert type(dead) is MarkedDead
    stale = _storage_answer(CacheStale(StaleReason.TASK_NOT_READY, "task 0 of job 9"))
    assert type(stale) is CacheStaleAnswer
