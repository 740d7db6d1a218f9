"""Every RPC with malformed, unknown, stale or badly timed input: the right status code, and a
service that still answers and still runs jobs afterwards."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import trio
import zstandard

from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.wire import encode_frame
from spider.storage import StorageInternalError, StorageUnavailable
from spider.storage.job_lifecycle import JobLifecycle
from tests.unit.storage.jobs import flat, submission

from .conftest import RunningStorage

JOBS = "JobOrchestrationService"
INSTANCES = "TaskInstanceManagementService"
QUEUE = "InboundQueueService"
GROUPS = "ResourceGroupManagementService"
LIVENESS = "ExecutionManagerLivenessService"
SCHEDULERS = "SchedulerRegistrationService"

Code = grpc.StatusCode
UNKNOWN_ID = 987_654_321
OVERSIZED = 5 * 1024 * 1024  # over gRPC's default 4 MiB message limit
# 2 GiB of zeros in a few kB: decompression must stop at its limit, not exhaust memory.
ZSTD_BOMB = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 * 1024 * 1024)) * 32


async def test_bad_requests_get_their_status_and_the_service_keeps_serving(
    storage: RunningStorage,
) -> None:
    client = storage.client
    group = await storage.add_group()
    graph = flat(2)
    good_graph, good_inputs = submission(graph, [1, 2])

    async def register(compressed_graph: bytes, compressed_inputs: bytes) -> int:
        reply = await client.call(
            JOBS,
            "RegisterJob",
            resource_group_id=group,
            compressed_serialized_task_graph=compressed_graph,
            compressed_serialized_inputs=compressed_inputs,
        )
        job_id: int = reply.job_id
        return job_id

    ready_job = await register(good_graph, good_inputs)
    running_job = await register(good_graph, good_inputs)
    await client.call(JOBS, "StartJob", job_id=running_job)
    em = await storage.em()
    session = em.session_id
    [entry, other] = await trio.to_thread.run_sync(em.poll)
    context = await trio.to_thread.run_sync(em.register_instance, running_job, entry.task_id)
    live = {"task_instance_id": context.task_instance_id}
    index_0 = client.task_id(0)
    commit = client.task_id(kind="commit")
    cleanup = client.task_id(kind="cleanup")
    no_kind = client.pb.common.TaskId()
    em_fields = {"execution_manager_id": em.em_id, "session_id": session}
    instance = {"job_id": running_job, "task_id": entry.task_id, **live, **em_fields}
    zstd = zstandard.ZstdCompressor()

    def job_fields(compressed_graph: bytes, compressed_inputs: bytes = good_inputs) -> Any:
        return {
            "resource_group_id": group,
            "compressed_serialized_task_graph": compressed_graph,
            "compressed_serialized_inputs": compressed_inputs,
        }

    cases: list[tuple[str, str, dict[str, Any], grpc.StatusCode]] = [
        # JobOrchestrationService
        (JOBS, "RegisterJob", job_fields(b""), Code.INVALID_ARGUMENT),
        (JOBS, "RegisterJob", job_fields(b"\x28\xb5\x2f\xfd garbage"), Code.INVALID_ARGUMENT),
        (JOBS, "RegisterJob", job_fields(zstd.compress(b"{not json")), Code.INVALID_ARGUMENT),
        (JOBS, "RegisterJob", job_fields(zstd.compress(b'{"tasks": 1}')), Code.INVALID_ARGUMENT),
        (JOBS, "RegisterJob", job_fields(good_graph, b"junk"), Code.INVALID_ARGUMENT),
        (
            JOBS,
            "RegisterJob",
            job_fields(good_graph, zstd.compress(encode_frame([b"\x01"]))),
            Code.INVALID_ARGUMENT,
        ),
        # Spider answers RESOURCE_EXHAUSTED over 4 MiB; spider.rpc has no receive limit yet.
        (JOBS, "RegisterJob", job_fields(b"\x00" * OVERSIZED), Code.INVALID_ARGUMENT),
        (JOBS, "RegisterJob", job_fields(ZSTD_BOMB), Code.INVALID_ARGUMENT),
        (
            JOBS,
            "RegisterJob",
            {**job_fields(good_graph), "resource_group_id": 0},
            Code.UNAUTHENTICATED,
        ),
        (JOBS, "StartJob", {}, Code.NOT_FOUND),
        (JOBS, "StartJob", {"job_id": UNKNOWN_ID}, Code.NOT_FOUND),
        (JOBS, "StartJob", {"job_id": running_job}, Code.FAILED_PRECONDITION),
        (JOBS, "CancelJob", {"job_id": UNKNOWN_ID}, Code.NOT_FOUND),
        (JOBS, "GetJobState", {"job_id": UNKNOWN_ID}, Code.NOT_FOUND),
        (JOBS, "GetJobOutputs", {"job_id": UNKNOWN_ID}, Code.NOT_FOUND),
        (JOBS, "GetJobOutputs", {"job_id": running_job}, Code.FAILED_PRECONDITION),
        (JOBS, "GetJobOutputs", {"job_id": ready_job}, Code.FAILED_PRECONDITION),
        (JOBS, "GetJobError", {"job_id": UNKNOWN_ID}, Code.NOT_FOUND),
        (JOBS, "GetJobError", {"job_id": running_job}, Code.FAILED_PRECONDITION),
        # TaskInstanceManagementService: unpack, then session, then cache
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, **em_fields},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": no_kind, **em_fields},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": index_0, **em_fields, "session_id": session + 1},
            Code.NOT_FOUND,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": UNKNOWN_ID, "task_id": index_0, **em_fields},
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": ready_job, "task_id": index_0, **em_fields},
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": commit, **em_fields},
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": cleanup, **em_fields},
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": client.task_id(99), **em_fields},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": running_job, "task_id": client.task_id(2**64 - 1), **em_fields},
            Code.INVALID_ARGUMENT,
        ),
        (INSTANCES, "ReportTaskSuccess", {**instance, "task_id": None}, Code.INVALID_ARGUMENT),
        (INSTANCES, "ReportTaskSuccess", {**instance, "session_id": 0}, Code.NOT_FOUND),
        (
            INSTANCES,
            "ReportTaskSuccess",
            {**instance, "serialized_outputs": b"\xff\xff\xff\xff"},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "ReportTaskSuccess",
            {**instance, "serialized_outputs": encode_frame([b"\x01", b"\x02"])},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "ReportTaskSuccess",
            {
                **instance,
                "task_instance_id": UNKNOWN_ID,
                "serialized_outputs": encode_frame([b"\x01"]),
            },
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "ReportTaskFailure",
            {**instance, "task_instance_id": UNKNOWN_ID},
            Code.FAILED_PRECONDITION,
        ),
        (
            INSTANCES,
            "ReportTaskFailure",
            {**instance, "job_id": UNKNOWN_ID},
            Code.FAILED_PRECONDITION,
        ),
        (INSTANCES, "ReportTaskFailure", {**instance, "task_id": no_kind}, Code.INVALID_ARGUMENT),
        # ResourceGroupManagementService
        (GROUPS, "AddResourceGroup", {"external_resource_group_id": ""}, Code.INVALID_ARGUMENT),
        (
            GROUPS,
            "AddResourceGroup",
            {"external_resource_group_id": "x" * 300},
            Code.INVALID_ARGUMENT,
        ),
        (
            GROUPS,
            "AddResourceGroup",
            {"external_resource_group_id": "big", "password": b"p" * 3000},
            Code.INVALID_ARGUMENT,
        ),
        (GROUPS, "VerifyResourceGroup", {}, Code.UNAUTHENTICATED),
        # ExecutionManagerLivenessService
        (LIVENESS, "RegisterExecutionManager", {}, Code.INVALID_ARGUMENT),
        (LIVENESS, "RegisterExecutionManager", {"ip_address": "999.1.1.1"}, Code.INVALID_ARGUMENT),
        (LIVENESS, "RegisterExecutionManager", {"ip_address": "localhost"}, Code.INVALID_ARGUMENT),
        (LIVENESS, "UpdateExecutionManagerHeartbeat", {}, Code.INVALID_ARGUMENT),
        # SchedulerRegistrationService
        (SCHEDULERS, "RegisterScheduler", {"port": 50052}, Code.INVALID_ARGUMENT),
        (SCHEDULERS, "RegisterScheduler", {"host": "s", "port": 70000}, Code.INVALID_ARGUMENT),
    ]

    wrong = []
    for service, method, fields, expected in cases:
        got = await client.status(
            service, method, **{k: v for k, v in fields.items() if v is not None}
        )
        if got != expected:
            wrong.append(f"{method}({sorted(fields)}): {got.name}, expected {expected.name}")
    assert wrong == []

    # Still serving, state intact: the live instance reports, the job finishes.
    assert (await client.call("SessionManagementService", "GetSession")).session_id == session
    empty = await client.call(QUEUE, "PollReadyTasks", max_items=0, wait_ms=60_000)
    assert list(empty.tasks.tasks) == []
    outputs = encode_frame([b"\x05"])
    await trio.to_thread.run_sync(em.succeed, running_job, entry.task_id, context, outputs)
    await trio.to_thread.run_sync(em.run, {running_job: graph}, other)
    await trio.to_thread.run_sync(em.run_until_idle, {running_job: graph})
    state = await client.call(JOBS, "GetJobState", job_id=running_job)
    assert state.state == client.pb.storage.SUCCEEDED


async def test_internal_and_unavailable_errors_fail_only_the_request(
    storage: RunningStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = storage.client

    async def database_down(self: JobLifecycle, job_id: JobId) -> JobState:
        raise StorageUnavailable("the database is down (injected)")

    async def broken(self: JobLifecycle, job_id: JobId) -> JobState:
        raise RuntimeError("an invariant broke (injected)")

    async def inconsistent(self: JobLifecycle, job_id: JobId) -> JobState:
        raise StorageInternalError("cache and database disagree (injected)")

    codes = []
    for replacement in (database_down, broken, inconsistent):
        monkeypatch.setattr(JobLifecycle, "get_job_state", replacement)
        codes.append(await client.status(JOBS, "GetJobState", job_id=1))
    monkeypatch.undo()

    assert codes == [Code.UNAVAILABLE, Code.INTERNAL, Code.INTERNAL]
    assert await client.status(JOBS, "GetJobState", job_id=UNKNOWN_ID) == Code.NOT_FOUND


async def test_a_poll_abandoned_by_its_client_leaves_the_service_serving(
    storage: RunningStorage,
) -> None:
    client = storage.client

    code = await client.status(QUEUE, "PollReadyTasks", deadline=0.2, max_items=5, wait_ms=60_000)

    assert code == Code.DEADLINE_EXCEEDED
    group = await storage.add_group()
    graph, inputs = submission(flat(1), [1])
    job = await client.call(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    )
    await client.call(JOBS, "StartJob", job_id=job.job_id)
    # The abandoned poll was cancelled, so it did not swallow the entry.
    reply = await client.call(QUEUE, "PollReadyTasks", max_items=5, wait_ms=0)
    assert [entry.job_id for entry in reply.tasks.tasks] == [job.job_id]
