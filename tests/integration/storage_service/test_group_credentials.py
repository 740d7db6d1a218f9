"""Resource-group credentials on job calls (``security.require_group_credentials``), over real
gRPC on loopback, on SQLite and MariaDB: a caller sees and changes only the jobs of the group
whose password it sends (docs/security.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from spider import rpc
from spider.client import ClientConfig, GroupCredential, ResourceGroupError, open_client
from spider.core.ids import ResourceGroupId
from spider.proto import storage as storage_pb
from spider.proto.spider_py import catalog as catalog_pb
from spider.proto.spider_py import jobs as jobs_pb
from spider.rpc.auth import GROUP_ID_HEADER, GROUP_PASSWORD_HEADER, group_metadata
from spider.storage import StorageState
from tests.unit.storage.jobs import diamond, submission

from .conftest import TEST_CONFIG, RunningStorage, StorageLauncher

TEST_BOUND = 30.0
REQUIRING = attrs.evolve(TEST_CONFIG, security=rpc.SecurityConfig(require_group_credentials=True))
JOBS = storage_pb.JobOrchestrationServiceStub
SUBMISSION = jobs_pb.JobSubmissionServiceStub

Metadata = tuple[tuple[str, str | bytes], ...]


@attrs.frozen
class Teams:
    """Two groups on a storage that requires credentials, and a Ready job of each."""

    storage: RunningStorage
    alpha: ResourceGroupId
    beta: ResourceGroupId
    alpha_job: int
    beta_job: int


def register_request(group: int) -> storage_pb.RegisterJobRequest:
    graph, inputs = submission(diamond(), [1, 2])
    return storage_pb.RegisterJobRequest(
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    )


async def call(storage: RunningStorage, metadata: Metadata, method: Any, request: Any) -> Any:
    endpoint = rpc.Endpoint("127.0.0.1", storage.port)
    async with rpc.connect_channel(endpoint, rpc.RpcConfig(metadata=metadata)) as channel:
        return await channel.call(method, request, deadline=TEST_BOUND)


def job_request(job_id: int) -> storage_pb.JobIdRequest:
    return storage_pb.JobIdRequest(job_id=job_id)


def job_calls(job_id: int) -> list[tuple[str, Any, Any]]:
    """Every job call about ``job_id``: name, method, request."""
    return [
        ("StartJob", JOBS.start_job, job_request(job_id)),
        ("CancelJob", JOBS.cancel_job, job_request(job_id)),
        ("GetJobState", JOBS.get_job_state, job_request(job_id)),
        ("GetJobOutputs", JOBS.get_job_outputs, job_request(job_id)),
        ("GetJobError", JOBS.get_job_error, job_request(job_id)),
        ("WaitForJob", SUBMISSION.wait_for_job, jobs_pb.WaitForJobRequest(job_id=job_id)),
    ]


@asynccontextmanager
async def teams(launcher: StorageLauncher) -> AsyncIterator[Teams]:
    async with launcher.run(REQUIRING) as storage:
        alpha = await storage.add_group("alpha", b"alpha-pw")
        beta = await storage.add_group("beta", b"beta-pw")
        jobs = []
        for group, password in ((alpha, b"alpha-pw"), (beta, b"beta-pw")):
            reply = await call(
                storage,
                group_metadata(password, group),
                JOBS.register_job,
                register_request(group),
            )
            jobs.append(reply.job_id)
        yield Teams(storage, alpha, beta, *jobs)


async def beta_state(teams: Teams) -> int:
    reply = await call(
        teams.storage,
        group_metadata(b"beta-pw", teams.beta),
        JOBS.get_job_state,
        job_request(teams.beta_job),
    )
    return int(reply.state)


async def test_job_calls_without_a_credential_are_unauthenticated(
    launcher: StorageLauncher,
) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            with pytest.raises(rpc.UnauthenticatedError, match="no resource group credential"):
                await call(t.storage, (), JOBS.register_job, register_request(t.alpha))
            with pytest.raises(rpc.UnauthenticatedError, match="no resource group credential"):
                await call(
                    t.storage,
                    (),
                    SUBMISSION.submit_job,
                    jobs_pb.SubmitJobRequest(job=register_request(t.alpha), start=True),
                )
            with pytest.raises(rpc.UnauthenticatedError, match="no resource group credential"):
                await call(
                    t.storage,
                    (),
                    SUBMISSION.run_job,
                    jobs_pb.RunJobRequest(job=register_request(t.alpha), wait_ms=0),
                )
            for _name, method, request in job_calls(t.alpha_job):
                with pytest.raises(rpc.UnauthenticatedError):
                    await call(t.storage, (), method, request)
            assert await beta_state(t) == storage_pb.JobState.READY


async def test_another_group_s_jobs_are_permission_denied(launcher: StorageLauncher) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            alpha = group_metadata(b"alpha-pw", t.alpha)
            with pytest.raises(rpc.PermissionDeniedError, match="another resource group"):
                await call(t.storage, alpha, JOBS.register_job, register_request(t.beta))
            run = jobs_pb.RunJobRequest(job=register_request(t.beta), wait_ms=0)
            with pytest.raises(rpc.PermissionDeniedError, match="another resource group"):
                await call(t.storage, alpha, SUBMISSION.run_job, run)
            for _name, method, request in job_calls(t.beta_job):
                with pytest.raises(rpc.PermissionDeniedError, match=f"job {t.beta_job}"):
                    await call(t.storage, alpha, method, request)
            # Neither started nor cancelled by the refused calls.
            assert await beta_state(t) == storage_pb.JobState.READY


async def test_a_password_alone_opens_only_its_own_group_s_jobs(
    launcher: StorageLauncher,
) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            password_only = ((GROUP_PASSWORD_HEADER, b"alpha-pw"),)
            reply = await call(
                t.storage, password_only, JOBS.get_job_state, job_request(t.alpha_job)
            )
            assert reply.state == storage_pb.JobState.READY
            for _name, method, request in job_calls(t.beta_job):
                with pytest.raises(rpc.UnauthenticatedError, match="invalid resource group"):
                    await call(t.storage, password_only, method, request)
            assert await beta_state(t) == storage_pb.JobState.READY


MALFORMED: dict[str, Callable[[Teams], Metadata]] = {
    "wrong-password": lambda t: group_metadata(b"beta-pw", t.alpha),
    "not-an-id": lambda t: ((GROUP_PASSWORD_HEADER, b"alpha-pw"), (GROUP_ID_HEADER, "12a")),
    "huge-id": lambda t: ((GROUP_PASSWORD_HEADER, b"alpha-pw"), (GROUP_ID_HEADER, str(2**64))),
    "huge-password": lambda t: ((GROUP_PASSWORD_HEADER, b"x" * 5000),),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_wrong_or_malformed_credentials_are_unauthenticated(
    launcher: StorageLauncher, case: str
) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            with pytest.raises(rpc.UnauthenticatedError):
                await call(t.storage, MALFORMED[case](t), JOBS.cancel_job, job_request(t.alpha_job))
            reply = await call(
                t.storage,
                group_metadata(b"alpha-pw", t.alpha),
                JOBS.get_job_state,
                job_request(t.alpha_job),
            )
            assert reply.state == storage_pb.JobState.READY


async def test_an_unknown_job_is_not_found_with_a_credential(launcher: StorageLauncher) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            with pytest.raises(rpc.NotFoundError):
                await call(
                    t.storage,
                    group_metadata(b"alpha-pw", t.alpha),
                    JOBS.get_job_state,
                    job_request(t.beta_job + 1000),
                )


async def test_a_finished_job_s_owner_is_read_from_the_database(
    launcher: StorageLauncher,
) -> None:
    """A terminal job is not in the cache after a restart: its group comes from its row."""
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            beta = group_metadata(b"beta-pw", t.beta)
            await call(t.storage, beta, JOBS.cancel_job, job_request(t.beta_job))
        async with launcher.run(REQUIRING) as restarted:
            assert restarted.state.lifecycle.cache.get(t.beta_job) is None  # type: ignore[arg-type]
            with pytest.raises(rpc.PermissionDeniedError):
                await call(
                    restarted,
                    group_metadata(b"alpha-pw", t.alpha),
                    JOBS.get_job_error,
                    job_request(t.beta_job),
                )
            reply = await call(restarted, beta, JOBS.get_job_state, job_request(t.beta_job))
            assert reply.state == storage_pb.JobState.CANCELLED


async def test_a_verified_credential_is_not_hashed_again(
    launcher: StorageLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifications: list[int] = []
    verify = StorageState.verify_resource_group

    async def counting(self: StorageState, group: ResourceGroupId, password: bytes) -> None:
        verifications.append(group)
        await verify(self, group, password)

    monkeypatch.setattr(StorageState, "verify_resource_group", counting)
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            verifications.clear()
            alpha = group_metadata(b"alpha-pw", t.alpha)
            for _ in range(5):
                await call(t.storage, alpha, JOBS.get_job_state, job_request(t.alpha_job))
            assert verifications == []  # verified when its job was registered
            wrong = group_metadata(b"not-alpha-pw", t.alpha)
            for _ in range(2):
                with pytest.raises(rpc.UnauthenticatedError):
                    await call(t.storage, wrong, JOBS.get_job_state, job_request(t.alpha_job))
            assert verifications == [t.alpha, t.alpha]  # a wrong password is never remembered


async def test_without_the_setting_job_calls_need_no_credential(
    storage: RunningStorage,
) -> None:
    with trio.fail_after(TEST_BOUND):
        group = await storage.add_group("open", b"pw")
        reply = await call(storage, (), JOBS.register_job, register_request(group))
        state = await call(storage, (), JOBS.get_job_state, job_request(reply.job_id))
    assert state.state == storage_pb.JobState.READY


async def test_the_python_client_sends_its_group_credential(launcher: StorageLauncher) -> None:
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            endpoint = rpc.Endpoint("127.0.0.1", t.storage.port)
            alpha = ClientConfig(group_credential=GroupCredential(b"alpha-pw", t.alpha))
            async with open_client(endpoint, alpha) as client:
                assert (await client.state(t.alpha_job)).value == "Ready"
                with pytest.raises(ResourceGroupError, match="another resource group"):
                    await client.cancel(t.beta_job)
            async with open_client(endpoint) as anonymous:
                with pytest.raises(ResourceGroupError, match="group_credential"):
                    await anonymous.state(t.alpha_job)
            assert await beta_state(t) == storage_pb.JobState.READY


async def test_a_listing_shows_the_caller_s_own_group_only(launcher: StorageLauncher) -> None:
    listing = catalog_pb.JobCatalogServiceStub.list_jobs
    with trio.fail_after(TEST_BOUND):
        async with teams(launcher) as t:
            alpha = group_metadata(b"alpha-pw", t.alpha)
            reply = await call(t.storage, alpha, listing, catalog_pb.ListJobsRequest())
            assert [job.job_id for job in reply.jobs] == [t.alpha_job]
            asked_for_beta = catalog_pb.ListJobsRequest(resource_group_id=t.beta)
            with pytest.raises(rpc.PermissionDeniedError, match="another resource group"):
                await call(t.storage, alpha, listing, asked_for_beta)
            # A password without the group it belongs to cannot say whose jobs to list.
            password_only = ((GROUP_PASSWORD_HEADER, b"alpha-pw"),)
            with pytest.raises(rpc.UnauthenticatedError, match="group id"):
                await call(t.storage, password_only, listing, catalog_pb.ListJobsRequest())
            with pytest.raises(rpc.UnauthenticatedError):
                await call(
                    t.storage,
                    group_metadata(b"beta-pw", t.alpha),
                    listing,
                    catalog_pb.ListJobsRequest(),
                )
