"""The client's one-call round trip (RunJob) and two-call one (SubmitJob, WaitForJob) against a
real storage over loopback gRPC, and the same jobs against storages without Spider-py's jobs
extension (one that does not serve it, one whose methods answer UNIMPLEMENTED) and against one
that serves all of it but RunJob (a Spider-py storage from before RunJob)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import trio

import spider.client._client as client_module
from spider.client import (
    JobBuilder,
    JobFailedError,
    JobProgress,
    JobResult,
    JobState,
    SpiderClient,
    SubmissionUnknownError,
    SyncClient,
    open_client,
)
from spider.core.backoff import Backoff
from spider.proto.spider_py import jobs as jobs_pb
from spider.rpc import (
    Channel,
    Endpoint,
    ServiceBase,
    UnaryMethod,
    UnavailableError,
    UnimplementedError,
    connect_channel,
    serve,
)
from spider.storage import StorageConfig, open_storage_state
from spider.storage.db import open_database
from spider.storage.db.config import SqliteConfig
from spider.storage.service import JobSubmissionService, storage_services
from tests.fake_em import FakeEm, tdl_runner
from tests.unit.client.tasks import add, double, fails

from .conftest import TASKS

WAIT_LIMIT = 30  # seconds; a bound on a hang, never a wait for a race

EXTENSION_CALLS = ("run_job", "submit_job", "wait_for_job")
UPSTREAM_CALLS = ("register_job", "start_job", "get_job_state", "get_job_outputs", "get_job_error")


def _all_services(services: list[ServiceBase]) -> list[ServiceBase]:
    return services


def _without_extension(services: list[ServiceBase]) -> list[ServiceBase]:
    return [s for s in services if not isinstance(s, JobSubmissionService)]


def _extension_unimplemented(services: list[ServiceBase]) -> list[ServiceBase]:
    # The generated base class answers UNIMPLEMENTED for both methods.
    return [*_without_extension(services), jobs_pb.JobSubmissionServiceBase()]


class _SubmissionWithoutRunJob(JobSubmissionService):
    """The extension of a Spider-py storage from before RunJob."""

    async def run_job(self, run_job_request: jobs_pb.RunJobRequest) -> jobs_pb.RunJobResponse:
        raise UnimplementedError("RunJob is not implemented")  # as the generated base does


def _without_run_job(services: list[ServiceBase]) -> list[ServiceBase]:
    served = next(s for s in services if isinstance(s, JobSubmissionService))
    without = _SubmissionWithoutRunJob(served._state, served._gate)
    return [*_without_extension(services), without]


STORAGES: dict[str, Callable[[list[ServiceBase]], list[ServiceBase]]] = {
    "extension": _all_services,
    "not-served": _without_extension,
    "unimplemented": _extension_unimplemented,
    "without-run-job": _without_run_job,
}


@attrs.define(eq=False)
class RecordingChannel:
    """A ``Channel`` that records the name of every method called through it, and can fail the
    first call of a method with a given error instead of sending it."""

    channel: Channel
    methods: list[str] = attrs.Factory(list)
    failures: dict[str, BaseException] = attrs.Factory(dict)

    @property
    def endpoint(self) -> Endpoint:
        return self.channel.endpoint

    async def call(
        self,
        method: UnaryMethod[Any, Any],
        request: Any,
        *,
        deadline: float | None = None,
        retry: Backoff | None = None,
    ) -> Any:
        name = method.name
        self.methods.append(name)
        failure = self.failures.pop(name, None)
        if failure is not None:
            raise failure
        return await self.channel.call(method, request, deadline=deadline, retry=retry)


@attrs.frozen
class Cluster:
    kind: str
    """Which of ``STORAGES``."""
    port: int
    client: SpiderClient
    recorder: RecordingChannel
    em: FakeEm

    def calls(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in self.recorder.methods if name in names]


@pytest.fixture(params=list(STORAGES))
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A storage on SQLite serving on loopback with the extension served, not served or
    answering UNIMPLEMENTED; a recording client of it; a fake EM."""
    pick = STORAGES[request.param]
    config = StorageConfig(host="127.0.0.1", port=0)
    database = open_database(SqliteConfig(tmp_path / "db"), {})
    try:
        async with (
            open_storage_state(config, database) as state,
            trio.open_nursery() as nursery,
        ):
            services = pick(storage_services(state))
            port: int = await nursery.start(serve, services, "127.0.0.1", 0)
            endpoint = Endpoint("127.0.0.1", port)
            async with open_client(endpoint) as client, connect_channel(endpoint) as em_channel:
                recorder = RecordingChannel(client.channel)
                client.channel = cast(Channel, recorder)
                em = FakeEm(em_channel, tdl_runner(TASKS))
                await em.register()
                yield Cluster(request.param, port, client, recorder, em)
            nursery.cancel_scope.cancel()
    finally:
        database.close()


def two_outputs() -> JobBuilder:
    job = JobBuilder()
    total = job.add(add, 1, 2)
    job.add(double, total)
    job.add(double, 20)
    return job


async def test_run_returns_the_outputs_in_the_same_way_on_every_storage(
    cluster: Cluster,
) -> None:
    group = await cluster.client.add_resource_group("team")
    cluster.recorder.methods.clear()
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.em.serve)
            assert await cluster.client.run(two_outputs(), group) == [6, 40]
            job = JobBuilder()
            job.add(fails, 7)
            with pytest.raises(JobFailedError, match="ValueError: cannot handle 7"):
                await cluster.client.run(job, group)
            nursery.cancel_scope.cancel()

    if cluster.kind == "extension":
        # One call to submit, start and wait for a job that ends soon.
        assert cluster.recorder.methods == ["run_job"] * 2
    elif cluster.kind == "without-run-job":
        # RunJob was tried once; then one call to submit and start, one long poll that ends
        # with the outputs or error.
        assert cluster.recorder.methods == ["run_job", *["submit_job", "wait_for_job"] * 2]
    else:
        # The extension was tried once, then never again on this connection.
        assert cluster.calls(EXTENSION_CALLS) == ["run_job", "submit_job"]
        assert cluster.calls(("register_job", "start_job", "get_job_outputs")) == [
            "register_job",
            "start_job",
            "get_job_outputs",
            "register_job",
            "start_job",
        ]
        assert cluster.calls(("get_job_error",)) == ["get_job_error"]


async def test_submit_and_start_in_one_call_then_wait_with_progress(cluster: Cluster) -> None:
    group = await cluster.client.add_resource_group("team")
    job = await cluster.client.submit(two_outputs(), group, start=True)
    assert await cluster.client.state(job) is JobState.RUNNING
    ready = await cluster.client.submit(two_outputs(), group)
    assert await cluster.client.state(ready) is JobState.READY

    seen: list[JobProgress] = []
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.em.run_until, job.id)
            result = await cluster.client.wait_result(job, on_progress=seen.append)
    assert result == JobResult(job.id, JobState.SUCCEEDED, raw_outputs=result.raw_outputs)
    assert await cluster.client.outputs(job) == [6, 40]
    assert seen[-1].state is JobState.SUCCEEDED
    assert seen[-1].num_tasks == 3
    assert [p.polls for p in seen] == list(range(1, len(seen) + 1))
    assert all(p.state is JobState.RUNNING for p in seen[:-1])
    assert await cluster.client.cancel(ready) is JobState.CANCELLED
    assert await cluster.client.wait(ready) is JobState.CANCELLED
    assert (await cluster.client.wait_result(ready)).error is None


async def test_a_job_that_waits_longer_than_a_long_poll_is_asked_about_again(
    cluster: Cluster,
) -> None:
    group = await cluster.client.add_resource_group("team")
    job = await cluster.client.submit(two_outputs(), group, start=True)
    cluster.client.config = attrs.evolve(cluster.client.config, long_poll=0.05, progress_poll=0.05)
    seen: list[JobProgress] = []
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            answered_twice = trio.Event()

            def progress(observed: JobProgress) -> None:
                seen.append(observed)
                if len(seen) == 2:
                    answered_twice.set()

            # Nothing runs the job until the client has been answered "Running" twice.
            async def run_after_two_answers() -> None:
                await answered_twice.wait()
                await cluster.em.run_until(job.id)

            nursery.start_soon(run_after_two_answers)
            assert await cluster.client.wait(job, on_progress=progress) is JobState.SUCCEEDED
    assert [p.state for p in seen[:2]] == [JobState.RUNNING, JobState.RUNNING]
    assert seen[-1].state is JobState.SUCCEEDED


async def test_a_submit_that_may_have_reached_storage_is_not_repeated(cluster: Cluster) -> None:
    group = await cluster.client.add_resource_group("team")
    submit_job = cluster.kind in ("extension", "without-run-job")
    first = "submit_job" if submit_job else "register_job"
    if first == "register_job":
        await cluster.client.submit(two_outputs(), group)  # learns that SubmitJob is missing
        cluster.recorder.methods.clear()
    cluster.recorder.failures[first] = UnavailableError("stream reset")
    with pytest.raises(SubmissionUnknownError, match="may have been received"):
        await cluster.client.submit(two_outputs(), group, start=True)
    refused = UnavailableError("connection refused")
    refused.__cause__ = ConnectionRefusedError()
    cluster.recorder.failures[first] = refused
    job = await cluster.client.submit(two_outputs(), group, start=True)
    assert cluster.calls((first,)) == [first, first, first]  # the refused attempt was retried
    # The two failed attempts registered nothing.
    assert job.id == (1 if submit_job else 2)
    assert await cluster.client.state(job) is JobState.RUNNING


async def test_a_run_that_may_have_reached_storage_is_not_repeated(cluster: Cluster) -> None:
    if cluster.kind != "extension":
        pytest.skip("only a storage serving RunJob is sent one")
    group = await cluster.client.add_resource_group("team")
    cluster.recorder.failures["run_job"] = UnavailableError("stream reset")
    with pytest.raises(SubmissionUnknownError, match=r"RunJob .* may have been received"):
        await cluster.client.run(two_outputs(), group)
    refused = UnavailableError("connection refused")
    refused.__cause__ = ConnectionRefusedError()
    cluster.recorder.failures["run_job"] = refused
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.em.serve)
            assert await cluster.client.run(two_outputs(), group) == [6, 40]
            nursery.cancel_scope.cancel()
    assert cluster.calls(EXTENSION_CALLS) == ["run_job"] * 3  # the refused one was retried
    # The two failed attempts registered nothing: the job that ran is the first.
    assert await cluster.client.state(1) is JobState.SUCCEEDED


async def test_a_job_that_outlasts_run_jobs_wait_is_then_long_polled(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = await cluster.client.add_resource_group("team")
    monkeypatch.setattr(client_module, "RUN_JOB_WAIT_SEC", 0.05)
    cluster.client.config = attrs.evolve(cluster.client.config, long_poll=0.05, progress_poll=0.05)
    cluster.recorder.methods.clear()
    seen: list[JobProgress] = []
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            answered = trio.Event()

            def progress(observed: JobProgress) -> None:
                seen.append(observed)
                answered.set()

            # Nothing runs the job until the client has been told it is still running.
            async def serve_after_an_answer() -> None:
                await answered.wait()
                await cluster.em.serve()

            nursery.start_soon(serve_after_an_answer)
            assert await cluster.client.run(two_outputs(), group, on_progress=progress) == [6, 40]
            nursery.cancel_scope.cancel()
    assert seen[0].state is JobState.RUNNING
    assert seen[-1].state is JobState.SUCCEEDED
    assert [p.polls for p in seen] == list(range(1, len(seen) + 1))
    if cluster.kind == "extension":
        assert cluster.recorder.methods[0] == "run_job"
        assert set(cluster.recorder.methods[1:]) == {"wait_for_job"}


async def test_the_blocking_client_waits_with_long_polls(cluster: Cluster) -> None:
    sync = SyncClient(Endpoint("127.0.0.1", cluster.port))
    group = await trio.to_thread.run_sync(sync.add_resource_group, "team")
    job = await trio.to_thread.run_sync(lambda: sync.submit(two_outputs(), group, start=True))
    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.em.serve)
            result = await trio.to_thread.run_sync(sync.wait_result, job)
            nursery.cancel_scope.cancel()
    assert result.state is JobState.SUCCEEDED
    assert await trio.to_thread.run_sync(sync.outputs, job) == [6, 40]
