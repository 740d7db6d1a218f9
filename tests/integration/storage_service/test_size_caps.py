"""Size caps (runtime.limits): a request over one is refused naming the limit and its setting,
except a failure message, which is truncated so that the failure is never lost."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import grpc
import pytest
import trio

from spider.core.wire import encode_frame
from spider.storage.config import LimitsConfig
from tests.hostile import MIB, length_delimited, zstd_bomb_inputs
from tests.unit.storage.jobs import flat, submission

from .conftest import TEST_CONFIG, RunningStorage, StorageLauncher
from .grpc_client import GrpcEm

JOBS = "JobOrchestrationService"
SMALL_LIMITS = LimitsConfig(max_request_bytes=4 * MIB, max_task_outputs_bytes=MIB)


@pytest.fixture
async def small_storage(launcher: StorageLauncher) -> AsyncIterator[RunningStorage]:
    """Storage with a 4 MiB request cap and a 1 MiB cap on one task's outputs."""
    config = attrs.evolve(
        TEST_CONFIG, runtime=attrs.evolve(TEST_CONFIG.runtime, limits=SMALL_LIMITS)
    )
    async with launcher.run(config) as running:
        yield running


async def _start_one_task_job(storage: RunningStorage) -> tuple[int, int, GrpcEm]:
    group = await storage.add_group()
    graph, inputs = submission(flat(1), [1])
    reply = await storage.client.call(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    )
    await storage.client.call(JOBS, "StartJob", job_id=reply.job_id)
    return reply.job_id, group, await storage.em()


async def test_a_zstd_bomb_of_valid_inputs_is_refused_at_the_inputs_cap(
    storage: RunningStorage,
) -> None:
    group = await storage.add_group()
    graph, _ = submission(flat(1), [1])
    bomb = zstd_bomb_inputs(200 * MIB)
    assert len(bomb) < 8000

    with pytest.raises(grpc.RpcError) as refusal:
        await storage.client.call(
            JOBS,
            "RegisterJob",
            resource_group_id=group,
            compressed_serialized_task_graph=graph,
            compressed_serialized_inputs=bomb,
        )

    assert refusal.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"{64 * MIB}-byte limit" in refusal.value.details()
    assert "runtime.limits.max_job_inputs_bytes" in refusal.value.details()


async def test_outputs_over_the_cap_are_refused_and_the_instance_may_still_report(
    small_storage: RunningStorage,
) -> None:
    job_id, _, em = await _start_one_task_job(small_storage)
    [entry] = await trio.to_thread.run_sync(em.poll)
    context = await trio.to_thread.run_sync(em.register_instance, job_id, entry.task_id)
    too_big = encode_frame([b"\x00" * MIB])

    with pytest.raises(grpc.RpcError) as refusal:
        await trio.to_thread.run_sync(em.succeed, job_id, entry.task_id, context, too_big)

    assert refusal.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"over the limit of {MIB} bytes" in refusal.value.details()
    assert "runtime.limits.max_task_outputs_bytes" in refusal.value.details()
    await trio.to_thread.run_sync(em.fail, job_id, entry.task_id, context, "outputs too large")
    state = await small_storage.client.call(JOBS, "GetJobState", job_id=job_id)
    assert state.state == small_storage.client.pb.storage.FAILED


async def test_a_request_over_the_request_cap_is_resource_exhausted(
    small_storage: RunningStorage,
) -> None:
    job_id, _, em = await _start_one_task_job(small_storage)

    with pytest.raises(grpc.RpcError) as refusal:
        await trio.to_thread.run_sync(
            em.succeed,
            job_id,
            small_storage.client.task_id(0),
            small_storage.client.pb.storage.ExecutionContext(task_instance_id=1),
            length_delimited(1, bytes(4 * MIB)),
        )

    assert refusal.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit of {4 * MIB} bytes" in refusal.value.details()
    assert "runtime.limits.max_request_bytes" in refusal.value.details()
    assert (await small_storage.client.call(JOBS, "GetJobState", job_id=job_id)).state


async def test_a_failure_message_over_the_cap_is_truncated_not_refused(
    storage: RunningStorage,
) -> None:
    job_id, _, em = await _start_one_task_job(storage)
    [entry] = await trio.to_thread.run_sync(em.poll)
    context = await trio.to_thread.run_sync(em.register_instance, job_id, entry.task_id)
    message = "boom " + "x" * (20 * MIB)

    await trio.to_thread.run_sync(em.fail, job_id, entry.task_id, context, message)

    error = (await storage.client.call(JOBS, "GetJobError", job_id=job_id)).error_message
    assert error.startswith("boom xxx")
    assert len(error) == 64 * 1024
    assert error.endswith(
        f"[truncated from {len(message)} characters to the limit, runtime.limits.max_error_message_chars]"
    )
