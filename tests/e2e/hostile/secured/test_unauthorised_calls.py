"""The hostile client with authentication on (docs/security.md, "How it is tested"): a client
without the cluster credential cannot call what only EMs and schedulers call, and a client without
a group's password cannot read or change that group's jobs, whatever credential-shaped metadata it
sends. Each refusal is
UNAUTHENTICATED or PERMISSION_DENIED, and the owner's jobs are unchanged afterwards. With every
credential, fuzzed bodies still get client errors: turning authentication on opens no path to
UNKNOWN or INTERNAL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spider.core.task_graph import TaskGraph
from spider.proto.spider_py.catalog import JobCatalogServiceStub
from spider.rpc import UnaryMethod
from spider.rpc.auth import CLUSTER_TOKEN_HEADER, GROUP_ID_HEADER, GROUP_PASSWORD_HEADER
from spider.storage.service import JobOrchestrationService, JobSubmissionService
from tests.e2e.hostile.conftest import HostileTarget
from tests.e2e.hostile.raw_client import (
    CLIENT_ERRORS,
    SCHEDULER_METHODS,
    STORAGE_METHODS,
    call,
    request_bodies,
)
from tests.integration.storage_service.grpc_client import (
    GrpcEm,
    StorageClient,
    StubModules,
    task_outputs,
)
from tests.unit.storage.jobs import submission, summing_task

from .conftest import CLUSTER_TOKEN

JOBS = "JobOrchestrationService"
OWNER_PASSWORD = b"\x00owner-password\xff"
INTRUDER_PASSWORD = b"intruder-password"
REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

Metadata = tuple[tuple[str, str | bytes], ...]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# What a client may call without the cluster credential, written out here rather than read from
# storage's own list, so that opening one more service to clients fails this suite.
OPEN_TO_CLIENTS = frozenset(
    {
        "storage.JobOrchestrationService",
        "storage.ResourceGroupManagementService",
        "storage.SessionManagementService",
        "spider_py.jobs.JobSubmissionService",
        "spider_py.status.ClusterStatusService",
        "spider_py.catalog.JobCatalogService",
        "/storage.SchedulerRegistrationService/GetSchedulers",
    }
)


def _guarded(method: UnaryMethod[Any, Any]) -> bool:
    service = method.route.removeprefix("/").partition("/")[0]
    return service not in OPEN_TO_CLIENTS and method.route not in OPEN_TO_CLIENTS


GUARDED_STORAGE_METHODS = tuple(method for method in STORAGE_METHODS if _guarded(method))
JOB_METHODS = (
    *JobOrchestrationService.rpc_methods,
    *JobSubmissionService.rpc_methods,
    JobCatalogServiceStub.get_job_tasks,
)


@attrs.frozen
class OwnedJobs:
    """The owner's group and two of its jobs: one finished with outputs, one waiting to be
    started; and a second group, whose password the intruder holds."""

    owner: StorageClient
    group: int
    intruder_group: int
    graph: bytes
    inputs: bytes
    done_job: int
    waiting_job: int

    def view(self) -> tuple[Any, ...]:
        """Everything an intruder might change: the jobs' states and the finished one's
        outputs."""
        done, waiting = self.done_job, self.waiting_job
        return (
            self.owner.sync(JOBS, "GetJobState", job_id=done).state,
            self.owner.sync(JOBS, "GetJobOutputs", job_id=done).serialized_outputs,
            self.owner.sync(JOBS, "GetJobState", job_id=waiting).state,
        )


@pytest.fixture(scope="module")
def owned(target: HostileTarget, stub_modules: StubModules) -> Iterator[OwnedJobs]:
    port = target.cluster.storage_port
    anyone = StorageClient.connect(stub_modules, port)
    owner = StorageClient.connect(
        stub_modules, port, metadata=((GROUP_PASSWORD_HEADER, OWNER_PASSWORD),)
    )
    em_client = StorageClient.connect(
        stub_modules, port, metadata=((CLUSTER_TOKEN_HEADER, CLUSTER_TOKEN),)
    )
    try:
        groups = [
            anyone.sync(
                "ResourceGroupManagementService",
                "AddResourceGroup",
                external_resource_group_id=name,
                password=password,
            ).resource_group_id
            for name, password in (("owner", OWNER_PASSWORD), ("intruder", INTRUDER_PASSWORD))
        ]
        task_graph = TaskGraph()
        task_graph.insert_task(summing_task(1, 1))
        graph, inputs = submission(task_graph, [7])
        registered = [
            owner.sync(
                JOBS,
                "RegisterJob",
                resource_group_id=groups[0],
                compressed_serialized_task_graph=graph,
                compressed_serialized_inputs=inputs,
            ).job_id
            for _ in range(2)
        ]
        done_job, waiting_job = registered
        owner.sync(JOBS, "StartJob", job_id=done_job)
        # The test plays the EM (with the cluster credential): no EM process holds work.
        em = GrpcEm.register(em_client)
        context = em.register_instance(done_job, em_client.task_id(0))
        em.succeed(
            done_job,
            em_client.task_id(0),
            context,
            task_outputs(task_graph, 0, context.serialized_task_io),
        )
        yield OwnedJobs(owner, groups[0], groups[1], graph, inputs, done_job, waiting_job)
    finally:
        for client in (anyone, owner, em_client):
            client.close()


def _credentials(owned: OwnedJobs) -> st.SearchStrategy[Metadata]:
    """Metadata of a caller who does not hold the owner's password."""
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
    passwords = st.one_of(
        st.just(INTRUDER_PASSWORD),
        st.binary(max_size=48),
        st.just(OWNER_PASSWORD[:-1]),
        st.just(OWNER_PASSWORD + b"\x00"),
        st.just(bytes(5000)),
    )
    group_ids = st.one_of(
        st.sampled_from(
            [str(owned.group), str(owned.intruder_group), str(2**63), str(2**64), "-1", ""]
        ),
        printable,
    )
    password = st.tuples(st.just(GROUP_PASSWORD_HEADER), passwords)
    group = st.tuples(st.just(GROUP_ID_HEADER), group_ids)
    token = st.just((CLUSTER_TOKEN_HEADER, CLUSTER_TOKEN))
    return st.lists(st.one_of(password, group, token), max_size=3, unique_by=lambda kv: kv[0]).map(
        tuple
    )


def _owner_request(owned: OwnedJobs, method: UnaryMethod[Any, Any], job: int) -> bytes:
    """A valid request of ``method`` about one of the owner's jobs (or, for a submission, into
    the owner's group): refusing it can only be the credential's doing."""
    fields = {field.name for field in method.request_type.DESCRIPTOR.fields}
    request = method.request_type()
    if "resource_group_id" in fields:  # RegisterJob
        request.resource_group_id = owned.group
        request.compressed_serialized_task_graph = owned.graph
        request.compressed_serialized_inputs = owned.inputs
    elif "job" in fields:  # SubmitJob, RunJob
        request.job.resource_group_id = owned.group
        request.job.compressed_serialized_task_graph = owned.graph
        request.job.compressed_serialized_inputs = owned.inputs
        if "start" in fields:
            request.start = True
    else:
        request.job_id = job
    body: bytes = request.SerializeToString()
    return body


def test_the_owner_s_jobs_are_what_the_intruder_attacks(owned: OwnedJobs) -> None:
    done_state, outputs, waiting_state = owned.view()
    states = owned.owner.pb.storage.JobState
    assert done_state == states.Value("SUCCEEDED")
    assert outputs
    assert waiting_state == states.Value("READY")


@pytest.mark.parametrize(
    "method", [*GUARDED_STORAGE_METHODS, *SCHEDULER_METHODS], ids=lambda method: method.route
)
def test_without_the_cluster_credential_every_internal_method_is_refused(
    target: HostileTarget, owned: OwnedJobs, method: UnaryMethod[Any, Any]
) -> None:
    channel = target.channel_for(method)
    wrong_tokens = st.one_of(
        st.just(CLUSTER_TOKEN[:-1]),
        st.just(CLUSTER_TOKEN + "0"),
        st.just(CLUSTER_TOKEN.upper()),
        st.just("x" * 5000),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=48),
    )
    metadata = st.one_of(
        _credentials(owned).filter(lambda sent: CLUSTER_TOKEN_HEADER not in dict(sent)),
        wrong_tokens.map(lambda token: ((CLUSTER_TOKEN_HEADER, token),)),
    )

    @FUZZ
    @given(body=request_bodies(method), sent=metadata)
    def attack(body: bytes, sent: Metadata) -> None:
        code, message = call(channel, method.route, body, sent)
        assert code is grpc.StatusCode.UNAUTHENTICATED, f"{method.route}: {code.name} {message}"

    before = owned.view()
    attack()
    assert owned.view() == before


def _intruders(owned: OwnedJobs) -> list[Metadata]:
    """The credentials an intruder would try first, each sent in every job call."""
    intruder = (GROUP_PASSWORD_HEADER, INTRUDER_PASSWORD)
    token = (CLUSTER_TOKEN_HEADER, CLUSTER_TOKEN)
    return [
        (),
        (token,),
        (intruder,),
        (intruder, (GROUP_ID_HEADER, str(owned.intruder_group))),
        (intruder, (GROUP_ID_HEADER, str(owned.group))),
        (intruder, token, (GROUP_ID_HEADER, str(owned.group))),
        ((GROUP_ID_HEADER, str(owned.group)),),
        ((GROUP_PASSWORD_HEADER, b""), (GROUP_ID_HEADER, str(owned.group))),
        ((GROUP_PASSWORD_HEADER, OWNER_PASSWORD), (GROUP_ID_HEADER, str(owned.intruder_group))),
    ]


@pytest.mark.parametrize("method", list(JOB_METHODS), ids=lambda method: method.route)
def test_without_the_owner_s_password_no_job_call_reads_or_changes_its_jobs(
    target: HostileTarget, owned: OwnedJobs, method: UnaryMethod[Any, Any]
) -> None:
    def attempt(job: int, sent: Metadata) -> None:
        body = _owner_request(owned, method, job)
        code, message = call(target.storage, method.route, body, sent)
        assert code in REFUSED, f"{method.route} with {sent!r}: {code.name} {message}"
        assert len(message) <= 1024

    @FUZZ
    @given(job=st.sampled_from([owned.done_job, owned.waiting_job]), sent=_credentials(owned))
    def attack(job: int, sent: Metadata) -> None:
        attempt(job, sent)

    before = owned.view()
    for sent in _intruders(owned):
        for job in (owned.done_job, owned.waiting_job):
            attempt(job, sent)
    attack()
    assert owned.view() == before
    # The refusals were the credential's: the owner's same request passes the check (and gets
    # the method's own answer, e.g. FAILED_PRECONDITION for the error of a job that succeeded).
    owner_metadata = ((GROUP_PASSWORD_HEADER, OWNER_PASSWORD),)
    body = _owner_request(owned, method, owned.done_job)
    code, message = call(target.storage, method.route, body, owner_metadata)
    assert code in CLIENT_ERRORS - REFUSED, f"{method.route}: {code.name} {message}"


@pytest.mark.parametrize(
    "method", [*STORAGE_METHODS, *SCHEDULER_METHODS], ids=lambda method: method.route
)
def test_with_every_credential_fuzzed_bodies_get_client_errors(
    target: HostileTarget, owned: OwnedJobs, method: UnaryMethod[Any, Any]
) -> None:
    channel = target.channel_for(method)
    sent = ((CLUSTER_TOKEN_HEADER, CLUSTER_TOKEN), (GROUP_PASSWORD_HEADER, OWNER_PASSWORD))

    @FUZZ
    @given(body=request_bodies(method))
    def fuzz(body: bytes) -> None:
        code, message = call(channel, method.route, body, sent)
        assert code in CLIENT_ERRORS, f"{method.route}({body!r}) answered {code.name}: {message}"
        assert len(message) <= 1024

    fuzz()
