"""Jobs end to end over real gRPC (grpcio stubs), on SQLite and MariaDB."""

from __future__ import annotations

import itertools

import grpc
import trio

from spider.core.task_graph import TaskGraph
from spider.core.task_outputs import decode_task_outputs
from spider.proto import storage as storage_pb
from tests.unit.storage.jobs import diamond, flat, reference_job_outputs, submission, summing_task

from .conftest import RunningStorage
from .grpc_client import GrpcEm, unpack

JOBS = "JobOrchestrationService"
GROUP_NUMBERS = itertools.count()
READY = int(storage_pb.JobState.READY)
RUNNING = int(storage_pb.JobState.RUNNING)
COMMIT_READY = int(storage_pb.JobState.COMMIT_READY)
CLEANUP_READY = int(storage_pb.JobState.CLEANUP_READY)
SUCCEEDED = int(storage_pb.JobState.SUCCEEDED)
FAILED = int(storage_pb.JobState.FAILED)
CANCELLED = int(storage_pb.JobState.CANCELLED)


async def submit(storage: RunningStorage, graph: TaskGraph, inputs: list[int]) -> int:
    group = await storage.add_group(f"group-{next(GROUP_NUMBERS)}")
    compressed_graph, compressed_inputs = submission(graph, inputs)
    reply = await storage.client.call(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=compressed_graph,
        compressed_serialized_inputs=compressed_inputs,
    )
    job_id: int = reply.job_id
    return job_id


async def job_state(storage: RunningStorage, job_id: int) -> int:
    reply = await storage.client.call(JOBS, "GetJobState", job_id=job_id)
    state: int = reply.state
    return state


async def run_until_idle(em: GrpcEm, graphs: dict[int, TaskGraph]) -> int:
    return await trio.to_thread.run_sync(em.run_until_idle, graphs)


async def test_a_job_runs_from_registration_to_its_outputs(storage: RunningStorage) -> None:
    graph = diamond()
    job_id = await submit(storage, graph, [1, 2])
    assert await job_state(storage, job_id) == READY
    em = await storage.em()
    assert await trio.to_thread.run_sync(em.poll) == []  # nothing before StartJob

    reply = await storage.client.call(JOBS, "StartJob", job_id=job_id)

    assert reply.state == RUNNING
    assert await run_until_idle(em, {job_id: graph}) == len(graph)
    assert await job_state(storage, job_id) == SUCCEEDED
    outputs = await storage.client.call(JOBS, "GetJobOutputs", job_id=job_id)
    decoded = [unpack(payload) for payload in decode_task_outputs(outputs.serialized_outputs)]
    assert decoded == reference_job_outputs(graph, [1, 2])
    assert set(em.registered.values()) == {1}  # every task ran exactly once


async def test_commit_runs_after_the_tasks_and_cleanup_after_a_cancel(
    storage: RunningStorage,
) -> None:
    graph = flat(3)
    committed = await submit(storage, graph, [1, 2, 3])
    cancelled = await submit(storage, graph, [4, 5, 6])
    await storage.client.call(JOBS, "StartJob", job_id=committed)
    em = await storage.em()

    await trio.to_thread.run_sync(em.run_until_idle, {committed: graph}, ["index"])
    assert await job_state(storage, committed) == COMMIT_READY
    commit_entries = await trio.to_thread.run_sync(em.poll, "commit")
    assert [(e.job_id, e.task_id.WhichOneof("kind")) for e in commit_entries] == [
        (committed, "commit")
    ]
    context = await trio.to_thread.run_sync(
        em.register_instance, committed, commit_entries[0].task_id
    )
    outputs = decode_task_outputs(context.serialized_task_io)
    assert [unpack(payload) for payload in outputs] == reference_job_outputs(graph, [1, 2, 3])
    await trio.to_thread.run_sync(em.succeed, committed, commit_entries[0].task_id, context, b"")
    assert await job_state(storage, committed) == SUCCEEDED

    await storage.client.call(JOBS, "StartJob", job_id=cancelled)
    reply = await storage.client.call(JOBS, "CancelJob", job_id=cancelled)

    assert reply.state == CLEANUP_READY
    cleanup_entries = await trio.to_thread.run_sync(em.poll, "cleanup")
    assert [e.job_id for e in cleanup_entries] == [cancelled]
    context = await trio.to_thread.run_sync(
        em.register_instance, cancelled, cleanup_entries[0].task_id
    )
    # Upstream sends empty bytes and the EM substitutes an empty frame; Spider-py sends the frame.
    assert context.serialized_task_io == b"\x00\x00\x00\x00"
    await trio.to_thread.run_sync(em.succeed, cancelled, cleanup_entries[0].task_id, context, b"")
    assert await job_state(storage, cancelled) == CANCELLED
    # A late registration for the cancelled job's regular task is stale.
    late = await storage.client.status(
        "TaskInstanceManagementService",
        "RegisterTaskInstance",
        job_id=cancelled,
        task_id=storage.client.task_id(0),
        execution_manager_id=em.em_id,
        session_id=em.session_id,
    )
    assert late == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_failed_task_is_retried_then_fails_the_job(storage: RunningStorage) -> None:
    graph = TaskGraph()
    graph.insert_task(summing_task(1, 1, retries=1))
    job_id = await submit(storage, graph, [7])
    await storage.client.call(JOBS, "StartJob", job_id=job_id)
    em = await storage.em()

    for attempt in range(2):
        [entry] = await trio.to_thread.run_sync(em.poll)
        assert await job_state(storage, job_id) == RUNNING
        context = await trio.to_thread.run_sync(em.register_instance, job_id, entry.task_id)
        await trio.to_thread.run_sync(em.fail, job_id, entry.task_id, context, f"boom {attempt}")

    assert await job_state(storage, job_id) == FAILED
    assert await trio.to_thread.run_sync(em.poll) == []
    error = await storage.client.call(JOBS, "GetJobError", job_id=job_id)
    assert "boom 1" in error.error_message
    assert (
        await storage.client.status(JOBS, "GetJobOutputs", job_id=job_id)
        == grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_a_running_job_cancelled_without_cleanup_is_cancelled(
    storage: RunningStorage,
) -> None:
    graph = diamond()
    job_id = await submit(storage, graph, [1, 2])
    await storage.client.call(JOBS, "StartJob", job_id=job_id)

    reply = await storage.client.call(JOBS, "CancelJob", job_id=job_id)

    assert reply.state == CANCELLED
    again = await storage.client.call(JOBS, "CancelJob", job_id=job_id)
    assert again.state == CANCELLED  # idempotent
    assert (
        await storage.client.status(JOBS, "StartJob", job_id=job_id)
        == grpc.StatusCode.FAILED_PRECONDITION
    )
