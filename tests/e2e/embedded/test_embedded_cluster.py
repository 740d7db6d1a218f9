"""``python -m spider.em`` without endpoints: storage, scheduler and an EM in one process.

Driven only through grpcio stubs generated from ``protos/``, so the job goes through the same
wire protocol a remote client would use, and real tasks run in real executors.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from spider.core.data_types import DataType, IntType
from spider.core.task_graph import InputSource, TaskDescriptor, TaskGraph, TdlContext
from spider.core.task_outputs import decode_task_outputs
from tests.certificates import make_pki
from tests.e2e.embedded.cluster_process import embedded_cluster
from tests.integration.storage_service.grpc_client import StorageClient, StubModules, unpack
from tests.unit.storage.jobs import submission

INT = DataType(IntType())
JOBS = "JobOrchestrationService"
JOB_TIMEOUT = 60.0


def add_chain(links: int) -> TaskGraph:
    """``links`` ``add`` tasks: the first adds the two graph inputs, each next one adds its
    predecessor's output to itself (so the job output is ``(a + b) * 2 ** (links - 1)``)."""
    graph = TaskGraph()
    context = TdlContext("integration_test_tasks", "add")
    graph.insert_task(TaskDescriptor(context, [INT, INT], [INT]))
    for index in range(1, links):
        source = InputSource(index - 1, 0)
        graph.insert_task(
            TaskDescriptor(context, [INT, INT], [INT], input_sources=[source, source])
        )
    return graph


def run_job(client: StorageClient, graph: TaskGraph, inputs: list[int]) -> int:
    """Submit and start the job, wait until it ends, check it succeeded; its id."""
    group = client.sync(
        "ResourceGroupManagementService",
        "AddResourceGroup",
        external_resource_group_id=f"group-{time.monotonic_ns()}",
        password=b"secret",
    ).resource_group_id
    compressed_graph, compressed_inputs = submission(graph, inputs)
    job_id = client.sync(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=compressed_graph,
        compressed_serialized_inputs=compressed_inputs,
    ).job_id
    client.sync(JOBS, "StartJob", job_id=job_id)
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        state = client.pb.storage.JobState.Name(
            client.sync(JOBS, "GetJobState", job_id=job_id).state
        )
        if state not in ("READY", "RUNNING", "COMMIT_READY", "CLEANUP_READY"):
            break
        assert time.monotonic() < deadline, f"job {job_id} still {state}"
        time.sleep(0.05)  # polling a job's state, as a client does; not waiting on a race
    assert state == "SUCCEEDED", client.sync(JOBS, "GetJobError", job_id=job_id)
    job: int = job_id
    return job


def outputs_of(client: StorageClient, job_id: int) -> list[int]:
    reply = client.sync(JOBS, "GetJobOutputs", job_id=job_id)
    return [unpack(payload) for payload in decode_task_outputs(reply.serialized_outputs)]


def test_a_job_runs_end_to_end_and_the_cluster_stops_cleanly(
    tmp_path: Path, stub_modules: StubModules
) -> None:
    with embedded_cluster(tmp_path) as cluster:
        client = StorageClient.connect(stub_modules, cluster.storage_port)
        try:
            assert outputs_of(client, run_job(client, add_chain(5), [3, 4])) == [7 * 16]
        finally:
            client.close()
    assert (cluster.data_dir / "storage.db").exists()


def test_one_job_runs_tasks_from_two_package_directories(
    tmp_path: Path, stub_modules: StubModules
) -> None:
    first, second = tmp_path / "team-a", tmp_path / "team-b"
    for directory, name, source in (
        (first, "adder", "@task\ndef add(a: int, b: int) -> int:\n    return a + b\n"),
        (second, "tripler", "@task\ndef triple(x: int) -> int:\n    return 3 * x\n"),
    ):
        (directory / name).mkdir(parents=True)
        (directory / name / "__init__.py").write_text(f"from spider.tdl import task\n\n{source}")
    graph = TaskGraph()
    graph.insert_task(TaskDescriptor(TdlContext("adder", "add"), [INT, INT], [INT]))
    graph.insert_task(
        TaskDescriptor(
            TdlContext("tripler", "triple"), [INT], [INT], input_sources=[InputSource(0, 0)]
        )
    )
    with embedded_cluster(tmp_path, package_dir=[first, second]) as cluster:
        client = StorageClient.connect(stub_modules, cluster.storage_port)
        try:
            assert outputs_of(client, run_job(client, graph, [3, 4])) == [21]
        finally:
            client.close()


def test_a_restart_keeps_finished_jobs_and_runs_new_ones(
    tmp_path: Path, stub_modules: StubModules
) -> None:
    with embedded_cluster(tmp_path) as first:
        client = StorageClient.connect(stub_modules, first.storage_port)
        try:
            finished = run_job(client, add_chain(2), [1, 2])
        finally:
            client.close()
    with embedded_cluster(tmp_path) as second:
        client = StorageClient.connect(stub_modules, second.storage_port)
        try:
            assert outputs_of(client, finished) == [6]
            assert outputs_of(client, run_job(client, add_chain(3), [5, 5])) == [40]
        finally:
            client.close()


def test_the_embedded_cluster_serves_with_tls_and_the_cluster_credential(
    tmp_path: Path, stub_modules: StubModules
) -> None:
    pki = make_pki(tmp_path / "pki").cluster
    token = tmp_path / "cluster-token"
    token.write_text("embedded-secret-0123456789\n")
    security = (
        f"security: {{tls: {{ca: {pki.ca}, cert: {pki.cert}, key: {pki.key}, "
        f"require_client_cert: true}}, cluster_token_file: {token}}}\n"
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.key.read_bytes(),
        certificate_chain=pki.cert.read_bytes(),
    )
    with embedded_cluster(tmp_path, extra_yaml=security) as cluster:
        client = StorageClient.connect(stub_modules, cluster.storage_port, credentials)
        try:
            # The embedded EM calls its storage in process; jobs run as without security.
            assert outputs_of(client, run_job(client, add_chain(3), [1, 1])) == [8]
            with pytest.raises(grpc.RpcError) as refused:
                client.sync(
                    "ExecutionManagerLivenessService", "RegisterExecutionManager", ip_address="x"
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            client.close()
