"""Spider-py's JobSubmissionService over real gRPC (grpcio stubs), on SQLite and MariaDB."""

from __future__ import annotations

import itertools
from typing import Any

import grpc
import trio

from spider.core.task_graph import TaskGraph
from spider.core.task_outputs import decode_task_outputs
from spider.proto import storage as storage_pb
from tests.unit.storage.jobs import diamond, reference_job_outputs, submission, summing_task

from .conftest import RunningStorage
from .grpc_client import unpack

SUBMISSION = "JobSubmissionService"
JOBS = "JobOrchestrationService"
GROUP_NUMBERS = itertools.count()
READY = int(storage_pb.JobState.READY)
RUNNING = int(storage_pb.JobState.RUNNING)
SUCCEEDED = int(storage_pb.JobState.SUCCEEDED)
FAILED = int(storage_pb.JobState.FAILED)
CANCELLED = int(storage_pb.JobState.CANCELLED)
HANG_BOUND = 60.0
"""A gRPC deadline that only a waiter nobody wakes reaches: a bound on a hang, not a wait."""


def register_request(
    storage: RunningStorage, group: int, graph: TaskGraph, inputs: list[int]
) -> Any:
    compressed_graph, compressed_inputs = submission(graph, inputs)
    return storage.client.pb.storage.RegisterJobRequest(
        resource_group_id=group,
        compressed_serialized_task_graph=compressed_graph,
        compressed_serialized_inputs=compressed_inputs,
    )


async def submit(
    storage: RunningStorage, graph: TaskGraph, inputs: list[int], *, start: bool = True
) -> int:
    group = await storage.add_group(f"group-{next(GROUP_NUMBERS)}")
    request = register_request(storage, group, graph, inputs)
    reply = await storage.client.call(SUBMISSION, "SubmitJob", job=request, start=start)
    job_id: int = reply.job_id
    return job_id


async def job_state(storage: RunningStorage, job_id: int) -> int:
    reply = await storage.client.call(JOBS, "GetJobState", job_id=job_id)
    state: int = reply.state
    return state


def one_task(retries: int = 0) -> TaskGraph:
    graph = TaskGraph()
    graph.insert_task(summing_task(1, 1, retries=retries))
    return graph


async def test_submit_and_start_then_a_long_poll_answers_with_the_outputs(
    storage: RunningStorage,
) -> None:
    graph = diamond()
    job_id = await submit(storage, graph, [1, 2])
    assert await job_state(storage, job_id) == RUNNING
    em = await storage.em()
    answers: list[Any] = []

    async def waiter() -> None:
        answers.append(
            await storage.client.call(
                SUBMISSION,
                "WaitForJob",
                deadline=HANG_BOUND,
                job_id=job_id,
                wait_ms=int(HANG_BOUND * 10_000),
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        assert await trio.to_thread.run_sync(em.run_until_idle, {job_id: graph}) == len(graph)

    (answer,) = answers
    assert answer.state == SUCCEEDED
    assert answer.error_message == ""
    decoded = [unpack(p) for p in decode_task_outputs(answer.serialized_outputs)]
    assert decoded == reference_job_outputs(graph, [1, 2])
    assert set(em.registered.values()) == {1}


async def test_submit_without_start_leaves_the_job_ready(storage: RunningStorage) -> None:
    job_id = await submit(storage, one_task(), [1], start=False)
    assert await job_state(storage, job_id) == READY
    em = await storage.em()
    assert await trio.to_thread.run_sync(em.poll) == []
    reply = await storage.client.call(SUBMISSION, "WaitForJob", job_id=job_id, wait_ms=0)
    assert reply.state == READY


async def test_a_rejected_submission_has_register_jobs_codes_and_leaves_no_job(
    storage: RunningStorage,
) -> None:
    group = await storage.add_group("team")
    bad = storage.client.pb.storage.RegisterJobRequest(
        resource_group_id=group,
        compressed_serialized_task_graph=b"not zstd",
        compressed_serialized_inputs=b"",
    )
    assert (
        await storage.client.status(SUBMISSION, "SubmitJob", job=bad, start=True)
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    unknown_group = register_request(storage, 9999, one_task(), [1])
    assert (
        await storage.client.status(SUBMISSION, "SubmitJob", job=unknown_group, start=True)
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert await storage.client.status(JOBS, "GetJobState", job_id=1) == grpc.StatusCode.NOT_FOUND
    em = await storage.em()
    assert await trio.to_thread.run_sync(em.poll) == []


async def test_a_failed_job_answers_its_error_and_an_unknown_job_is_not_found(
    storage: RunningStorage,
) -> None:
    job_id = await submit(storage, one_task(), [7])
    em = await storage.em()
    [entry] = await trio.to_thread.run_sync(em.poll)
    context = await trio.to_thread.run_sync(em.register_instance, job_id, entry.task_id)
    await trio.to_thread.run_sync(em.fail, job_id, entry.task_id, context, "boom")

    reply = await storage.client.call(SUBMISSION, "WaitForJob", job_id=job_id, wait_ms=1000)
    assert (reply.state, reply.error_message, reply.serialized_outputs) == (FAILED, "boom", b"")
    assert (
        await storage.client.status(SUBMISSION, "WaitForJob", job_id=12345, wait_ms=0)
        == await storage.client.status(JOBS, "GetJobState", job_id=12345)
        == grpc.StatusCode.NOT_FOUND
    )


async def test_a_wait_that_ends_answers_the_current_state(storage: RunningStorage) -> None:
    job_id = await submit(storage, one_task(), [1])
    reply = await storage.client.call(SUBMISSION, "WaitForJob", job_id=job_id, wait_ms=20)
    assert reply.state == RUNNING
    await storage.client.call(JOBS, "CancelJob", job_id=job_id)
    reply = await storage.client.call(SUBMISSION, "WaitForJob", job_id=job_id, wait_ms=0)
    assert reply.state == CANCELLED


async def test_run_job_answers_the_new_jobs_id_with_its_outputs_once_it_ends(
    storage: RunningStorage,
) -> None:
    graph = diamond()
    group = await storage.add_group("runner")
    request = register_request(storage, group, graph, [1, 2])
    em = await storage.em()
    answers: list[Any] = []

    async def runner() -> None:
        answers.append(
            await storage.client.call(
                SUBMISSION,
                "RunJob",
                deadline=HANG_BOUND,
                job=request,
                wait_ms=int(HANG_BOUND * 1000),
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        # The EM's first poll waits until RunJob has registered and started the job.
        first = await trio.to_thread.run_sync(lambda: em.poll(wait_ms=int(HANG_BOUND * 1000)))
        for entry in first:
            await trio.to_thread.run_sync(em.run, {1: graph}, entry)
        rest = await trio.to_thread.run_sync(em.run_until_idle, {1: graph})
        assert len(first) + rest == len(graph)

    (answer,) = answers
    assert answer.job_id == 1
    assert answer.HasField("outcome")
    assert (answer.outcome.state, answer.outcome.error_message) == (SUCCEEDED, "")
    decoded = [unpack(p) for p in decode_task_outputs(answer.outcome.serialized_outputs)]
    assert decoded == reference_job_outputs(graph, [1, 2])
    assert await job_state(storage, answer.job_id) == SUCCEEDED


async def test_run_job_whose_wait_ends_first_answers_the_running_job(
    storage: RunningStorage,
) -> None:
    group = await storage.add_group("runner")
    request = register_request(storage, group, one_task(), [1])
    answer = await storage.client.call(SUBMISSION, "RunJob", job=request, wait_ms=20)
    assert answer.outcome.state == RUNNING
    assert await job_state(storage, answer.job_id) == RUNNING
    em = await storage.em()
    [entry] = await trio.to_thread.run_sync(em.poll)
    assert entry.job_id == answer.job_id


async def test_a_rejected_run_job_has_register_jobs_codes_and_leaves_no_job(
    storage: RunningStorage,
) -> None:
    group = await storage.add_group("team")
    bad = storage.client.pb.storage.RegisterJobRequest(
        resource_group_id=group,
        compressed_serialized_task_graph=b"not zstd",
        compressed_serialized_inputs=b"",
    )
    assert (
        await storage.client.status(SUBMISSION, "RunJob", job=bad, wait_ms=0)
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    unknown_group = register_request(storage, 9999, one_task(), [1])
    assert (
        await storage.client.status(SUBMISSION, "RunJob", job=unknown_group, wait_ms=0)
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert await storage.client.status(JOBS, "GetJobState", job_id=1) == grpc.StatusCode.NOT_FOUND
    em = await storage.em()
    assert await trio.to_thread.run_sync(em.poll) == []
