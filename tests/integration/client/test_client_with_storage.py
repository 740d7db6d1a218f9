"""The client against a real storage service over loopback gRPC, with a fake EM."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
import trio

from spider.client import (
    JobBuilder,
    JobFailedError,
    JobNotFoundError,
    JobProgress,
    JobState,
    JobStateError,
    NotAvailableError,
    ResourceGroupError,
    SpiderClient,
    SubmittedJob,
    SyncClient,
    execution_policy,
    open_client,
)
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.rpc import Endpoint
from tests.fake_em import FakeEm
from tests.unit.client.tasks import add, double, fails, split

WAIT_LIMIT = 30  # seconds; a bound on a hang, never a wait for a race


def sum_job() -> JobBuilder:
    job = JobBuilder()
    total = job.add(add, 1, 2)
    halves = job.add(split, total)
    job.add(add, halves[0], halves[1])
    job.add(double, 20, policy=execution_policy(retries=1))
    return job


async def test_submit_start_wait_and_read_outputs(client: SpiderClient, fake_em: FakeEm) -> None:
    group = await client.add_resource_group("team")
    job = await client.submit(sum_job(), group)
    assert job.num_tasks == 4
    assert await client.state(job) is JobState.READY
    with pytest.raises(JobStateError, match="GetJobOutputs"):
        await client.outputs(job)
    assert await client.start(job) is JobState.RUNNING
    with pytest.raises(JobStateError, match="StartJob"):
        await client.start(job)

    seen: list[JobProgress] = []
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_em.run_until, job.id)
            state = await client.wait(job, on_progress=seen.append)
    assert state is JobState.SUCCEEDED
    assert seen[-1].state is JobState.SUCCEEDED
    assert seen[-1].num_tasks == 4
    assert [p.polls for p in seen] == list(range(1, len(seen) + 1))
    assert await client.outputs(job) == [3, 40]
    # By id alone, the outputs decode as plain msgpack values, or by the types given.
    assert await client.outputs(job.id) == [3, 40]
    assert await client.outputs(job.id, [int, int]) == [3, 40]
    with pytest.raises(JobStateError, match="GetJobError"):
        await client.error(job)
    assert sorted(ran.task_func for ran in fake_em.ran) == [
        "math::add",
        "math::add",
        "math::double",
        "math::split",
    ]


async def test_a_failed_job_reports_the_tasks_error(client: SpiderClient, fake_em: FakeEm) -> None:
    group = await client.add_resource_group("team")
    job = JobBuilder()
    job.add(fails, 7)
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_em.serve)
            with pytest.raises(JobFailedError, match="job 1 failed: ValueError: cannot handle 7"):
                await client.run(job, group)
            nursery.cancel_scope.cancel()
    assert await client.state(1) is JobState.FAILED
    assert "cannot handle 7" in await client.error(1)


async def test_cancel_and_unknown_jobs(client: SpiderClient) -> None:
    group = await client.add_resource_group("team")
    job = await client.submit(sum_job(), group)
    await client.start(job)
    assert await client.cancel(job) is JobState.CANCELLED
    assert await client.cancel(job) is JobState.CANCELLED  # idempotent
    assert await client.wait(job) is JobState.CANCELLED
    with pytest.raises(JobStateError):
        await client.start(job)
    with pytest.raises(JobNotFoundError, match="job 999 not found"):
        await client.state(999)
    with pytest.raises(JobNotFoundError):
        await client.cancel(SubmittedJob(999))  # type: ignore[arg-type]


async def test_resource_group_errors(client: SpiderClient) -> None:
    await client.add_resource_group("team", b"pw")
    with pytest.raises(ResourceGroupError, match="pick another name"):
        await client.add_resource_group("team")
    with pytest.raises(ResourceGroupError, match="does not exist"):
        await client.submit(sum_job(), 12345)


async def test_the_blocking_client(storage_port: int, fake_em: FakeEm) -> None:
    sync = SyncClient(Endpoint("127.0.0.1", storage_port))
    group = await trio.to_thread.run_sync(sync.add_resource_group, "team")
    job = await trio.to_thread.run_sync(sync.submit, sum_job(), group)
    assert await trio.to_thread.run_sync(sync.start, job) is JobState.RUNNING
    with trio.fail_after(WAIT_LIMIT):
        await fake_em.run_until(job.id)
    assert await trio.to_thread.run_sync(sync.wait, job) is JobState.SUCCEEDED
    assert await trio.to_thread.run_sync(sync.outputs, job) == [3, 40]


async def test_cluster_status_reports_ems_queues_and_jobs(
    client: SpiderClient, fake_em: FakeEm
) -> None:
    group = await client.add_resource_group("status")
    job = await client.submit(sum_job(), group)
    await client.start(job)

    status = await client.cluster_status()

    assert status.not_exposed == ()
    details = status.details
    assert details is not None
    [em] = details.execution_managers
    assert (em.execution_manager_id, em.alive) == (fake_em.em_id, True)
    assert details.alive_execution_managers == 1
    assert details.lanes["task"].depth == 2  # the two tasks with no parent are ready
    assert details.cached_jobs == details.stored_jobs == {JobState.RUNNING: 1}
    assert details.database.writable
    assert details.database.unwritable_for_sec == 0.0

    with trio.fail_after(WAIT_LIMIT):
        await fake_em.run_until(job.id)
    status = await client.cluster_status()
    assert status.details is not None
    assert status.details.lanes["task"].depth == 0
    assert status.details.stored_jobs == {JobState.SUCCEEDED: 1}


@contextmanager
def upstream_like_storage(session_id: int) -> Iterator[int]:
    """A grpcio server (gRPC C-core, like upstream's) serving only GetSession of Spider's
    services: GetSchedulers and Spider-py's GetClusterStatus answer UNIMPLEMENTED, as upstream's
    storage does. Yields its port."""

    def get_session(request: common.Void, context: object) -> storage_pb.GetSessionResponse:
        return storage_pb.GetSessionResponse(session_id=session_id)

    handler = grpc.method_handlers_generic_handler(
        "storage.SessionManagementService",
        {
            "GetSession": grpc.unary_unary_rpc_method_handler(
                get_session,
                request_deserializer=common.Void.FromString,
                response_serializer=storage_pb.GetSessionResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


async def test_cluster_status_without_the_extension_says_what_is_unavailable() -> None:
    with upstream_like_storage(session_id=7) as port:
        async with open_client(Endpoint("127.0.0.1", port)) as spider:
            status = await spider.cluster_status()

    assert status.session_id == 7
    assert status.schedulers is None
    assert status.details is None
    assert status.not_exposed == ("execution managers alive", "ready-queue depths", "jobs by state")


async def test_listing_jobs_from_a_storage_without_the_catalog_says_so() -> None:
    with upstream_like_storage(session_id=7) as port:
        async with open_client(Endpoint("127.0.0.1", port)) as spider:
            with pytest.raises(NotAvailableError, match="does not list jobs"):
                await spider.list_jobs()
