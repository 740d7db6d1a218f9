"""The EM's clients of Spider-py's execution extension: per-item status mapping, protocol checks
and how a peer that does not serve the extension is recognised."""

from __future__ import annotations

import pytest

from spider.core import TaskId
from spider.core.ids import JobId, SessionId, TaskInstanceId
from spider.em.assignment import ReportTarget
from spider.em.clients import ClientDeadlines, GrpcSchedulerClient, GrpcStorageClient
from spider.em.clients._convert import assignments_from_proto, registration_results_from_proto
from spider.em.clients._mapping import extension_missing
from spider.em.errors import (
    CacheStaleAnswer,
    ExtensionUnavailable,
    InvalidInput,
    ProtocolError,
    ServerError,
    StaleSessionAnswer,
    TransportError,
)
from spider.em.pool import TaskFailed, TaskSucceeded
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import LocalChannel, Status, UnknownError, error_for_status

from .fakes import EM_ID, assignment


def target(instance: int) -> ReportTarget:
    return ReportTarget(
        job_id=JobId(42),
        task_id=TaskId.index(0),
        task_instance_id=TaskInstanceId(100 + instance),
        em_id=EM_ID,
        session=SessionId(5),
    )


CODES = [Status.OK, Status.NOT_FOUND, Status.FAILED_PRECONDITION, Status.INVALID_ARGUMENT]
CODES += [Status.UNAVAILABLE, Status.INTERNAL]
EXPECTED = [None, StaleSessionAnswer, CacheStaleAnswer, InvalidInput, TransportError, ServerError]


class BatchStorage(execution_pb.TaskInstanceBatchServiceBase):
    """Answers each item with the next code of ``CODES``; remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[object] = []

    async def report_task_outcomes(
        self, report_task_outcomes_request: execution_pb.ReportTaskOutcomesRequest
    ) -> execution_pb.ReportTaskOutcomesResponse:
        self.requests.append(report_task_outcomes_request)
        return execution_pb.ReportTaskOutcomesResponse(
            statuses=[
                execution_pb.ItemStatus(code=code.value, message=f"says {code.name}")
                for code in CODES
            ]
        )

    async def register_task_instances(
        self, register_task_instances_request: execution_pb.RegisterTaskInstancesRequest
    ) -> execution_pb.RegisterTaskInstancesResponse:
        self.requests.append(register_task_instances_request)
        good = storage_pb.ExecutionContext(
            task_instance_id=9,
            tdl_context=storage_pb.TdlContext(package="p", task_func="f"),
            timeout_policy=storage_pb.TimeoutPolicy(soft_timeout_ms=1, hard_timeout_ms=2),
        )
        return execution_pb.RegisterTaskInstancesResponse(
            results=[
                execution_pb.RegistrationResult(execution_context=good),
                execution_pb.RegistrationResult(
                    error=execution_pb.ItemStatus(code=Status.NOT_FOUND.value, message="old")
                ),
            ]
        )


async def test_each_reported_outcome_gets_the_error_its_single_report_would_have() -> None:
    service = BatchStorage()
    client = GrpcStorageClient(LocalChannel([service], 5.0), ClientDeadlines())
    outcomes = [
        (target(n), TaskSucceeded(b"out", 1) if n % 2 else TaskFailed("no", "execution"))
        for n in range(len(CODES))
    ]
    errors = await client.report_outcomes(outcomes)
    assert [None if e is None else type(e) for e in errors] == EXPECTED
    assert [e.message for e in errors if e is not None] == [f"says {c.name}" for c in CODES[1:]]
    (request,) = service.requests
    assert isinstance(request, execution_pb.ReportTaskOutcomesRequest)
    assert request.outcomes[1].success.serialized_outputs == b"out"
    assert request.outcomes[0].failure.error_message == "no"
    assert request.outcomes[0].failure.task_instance_id == 100


async def test_registrations_answer_contexts_and_per_item_errors() -> None:
    client = GrpcStorageClient(LocalChannel([BatchStorage()], 5.0), ClientDeadlines())
    first, second = await client.register_task_instances([assignment(1), assignment(2)], EM_ID)
    assert not isinstance(first, Exception)
    assert (first.task_instance_id, first.hard_timeout_ms) == (9, 2)
    assert isinstance(second, StaleSessionAnswer)


async def test_peers_without_the_extension_are_recognised() -> None:
    storage = GrpcStorageClient(LocalChannel([], 5.0), ClientDeadlines())
    scheduler = GrpcSchedulerClient(LocalChannel([], 5.0), ClientDeadlines())
    with pytest.raises(ExtensionUnavailable):
        await storage.report_outcomes([(target(1), TaskSucceeded(b"", 1))])
    with pytest.raises(ExtensionUnavailable):
        await storage.register_task_instances([assignment(1)], EM_ID)
    with pytest.raises(ExtensionUnavailable):
        await scheduler.next_tasks(EM_ID, [], 0, 4)


def test_only_unimplemented_switches_the_extension_off() -> None:
    assert extension_missing(error_for_status(Status.UNIMPLEMENTED, "Method not found"))
    # A proxy (or grpclib before spider.rpc answered unknown routes with a content-type) may
    # say UNKNOWN for many reasons; none of them proves the peer lacks the service.
    assert not extension_missing(UnknownError("Missing content-type header"))
    assert not extension_missing(UnknownError("something else"))
    assert not extension_missing(error_for_status(Status.INTERNAL, "Method not found"))


def test_more_assignments_than_asked_for_is_a_protocol_error() -> None:
    assigned = scheduler_pb.SchedulerAssignment(
        id=1, job_id=2, task_id=common.TaskId(index=0), scheduler_id=3, session_id=4
    )
    response = execution_pb.NextTasksResponse(assignments=[assigned, assigned])
    with pytest.raises(ProtocolError):
        assignments_from_proto(response, max_tasks=1, operation="NextTasks")
    (only,) = assignments_from_proto(
        execution_pb.NextTasksResponse(assignments=[assigned]), max_tasks=1, operation="NextTasks"
    )
    assert (only.id, only.task_id, only.session) == (1, TaskId.index(0), 4)


def test_a_result_count_that_does_not_match_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        registration_results_from_proto(
            execution_pb.RegisterTaskInstancesResponse(results=[]), count=1, operation="R"
        )
    # A result with neither a context nor an error is unusable for that item only.
    (result,) = registration_results_from_proto(
        execution_pb.RegisterTaskInstancesResponse(results=[execution_pb.RegistrationResult()]),
        count=1,
        operation="R",
    )
    assert isinstance(result, ProtocolError)
