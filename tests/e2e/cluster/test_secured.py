"""A cluster of separate processes with mutual TLS, the cluster credential on every service and
resource-group credentials on job calls: jobs complete with the right outputs, a client cannot
pose as an EM or scheduler, and one group cannot see or change another's jobs.

The driver is grpcio (Google's gRPC core, as upstream Spider's components use), connecting with
a client certificate of the cluster's CA and sending its group's password as call credentials,
so this also checks that TLS and the credential metadata interoperate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from spider.cli import CliExit
from spider.rpc.auth import GROUP_PASSWORD_HEADER
from spider.storage.db import SqliteConfig
from tests.certificates import make_pki
from tests.integration.storage_service.grpc_client import StorageClient, StubModules

from .cluster import Cluster
from .conftest import running_cluster
from .driver import JobDriver
from .examples import nn_job, wordcount_job

TOKEN = "e2e-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PASSWORD = b"\x00team-password\xff"
TEXT = b"a rose is a rose is a rose " * 5 + b"thorn"


@pytest.fixture(scope="module")
def secured_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("secured")
    pki = make_pki(directory / "pki")
    token = directory / "cluster-token"
    token.write_text(TOKEN + "\n")
    node = pki.cluster
    security = {
        "tls": {
            "ca": str(node.ca),
            "cert": str(node.cert),
            "key": str(node.key),
            "require_client_cert": True,
        },
        "cluster_token_file": str(token),
        "require_group_credentials": True,
    }
    cluster = Cluster(directory, SqliteConfig(directory / "storage.db"), 0, security=security)
    yield from running_cluster(cluster)


@pytest.fixture(scope="module")
def credentials(secured_cluster: Cluster) -> grpc.ChannelCredentials:
    pki = secured_cluster.directory / "pki" / "cluster"
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "node.key").read_bytes(),
        certificate_chain=(pki / "node.pem").read_bytes(),
    )


def with_password(credentials: grpc.ChannelCredentials, password: bytes) -> grpc.ChannelCredentials:
    """``credentials`` plus the group's password on every call, as a grpcio client sends it."""

    def plugin(
        _context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback(((GROUP_PASSWORD_HEADER, password),), None)

    return grpc.composite_channel_credentials(credentials, grpc.metadata_call_credentials(plugin))


@contextmanager
def team_driver(
    stubs: StubModules, cluster: Cluster, credentials: grpc.ChannelCredentials, password: bytes
) -> Iterator[JobDriver]:
    secured = with_password(credentials, password)
    client = StorageClient.connect(stubs, cluster.storage_port, secured)
    try:
        yield JobDriver(client, password=password)
    finally:
        client.close()


@pytest.fixture
def secured_driver(
    stub_modules: StubModules, secured_cluster: Cluster, credentials: grpc.ChannelCredentials
) -> Iterator[JobDriver]:
    with team_driver(stub_modules, secured_cluster, credentials, PASSWORD) as driver:
        yield driver


def test_jobs_complete_with_tls_and_the_cluster_credential(
    secured_driver: JobDriver, secured_cluster: Cluster
) -> None:
    job = wordcount_job(TEXT)
    secured_driver.run(job, secured_cluster.check_alive)
    assert job.expected[0][b"rose"] == 15  # the reference itself is right
    secured_driver.run(nn_job(layers=4, width=8, seed=12), secured_cluster.check_alive)


def test_a_client_cannot_pose_as_an_em_or_scheduler(
    secured_driver: JobDriver, secured_cluster: Cluster
) -> None:
    client = secured_driver.client
    polls = ("InboundQueueService", "PollReadyTasks", {"max_items": 8, "wait_ms": 0})
    register = ("ExecutionManagerLivenessService", "RegisterExecutionManager", {"ip_address": "x"})
    for service, method, fields in (polls, register):
        with pytest.raises(grpc.RpcError) as refused:
            client.sync(service, method, **fields)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    secured_cluster.check_alive()


def test_one_group_cannot_see_or_change_another_s_jobs(
    secured_driver: JobDriver,
    secured_cluster: Cluster,
    stub_modules: StubModules,
    credentials: grpc.ChannelCredentials,
) -> None:
    job_id = secured_driver.submit(wordcount_job(TEXT))
    with team_driver(stub_modules, secured_cluster, credentials, b"other-team") as other:
        for method in ("GetJobState", "GetJobOutputs", "GetJobError", "CancelJob"):
            with pytest.raises(grpc.RpcError) as refused:
                other.client.sync("JobOrchestrationService", method, timeout=5.0, job_id=job_id)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    anonymous = StorageClient.connect(stub_modules, secured_cluster.storage_port, credentials)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.sync("JobOrchestrationService", "CancelJob", timeout=5.0, job_id=job_id)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    finally:
        anonymous.close()
    secured_driver.wait(job_id, secured_cluster.check_alive)
    assert secured_driver.state(job_id) == "SUCCEEDED"


def test_a_plaintext_client_is_not_served(
    stub_modules: StubModules, secured_cluster: Cluster
) -> None:
    client = StorageClient.connect(stub_modules, secured_cluster.storage_port)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            client.sync(
                "ResourceGroupManagementService",
                "AddResourceGroup",
                timeout=5.0,
                external_resource_group_id="plain",
                password=b"",
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        client.close()


def _spider(cluster: Cluster, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spider.cli", "--storage", f"127.0.0.1:{cluster.storage_port}"]
    return subprocess.run(
        [*command, *options, "--json", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SPIDER_TLS_CA": ""},
    )


def test_the_command_line_connects_with_its_tls_options(secured_cluster: Cluster) -> None:
    pki = secured_cluster.directory / "pki" / "cluster"
    tls = ["--tls-ca", str(pki / "ca.pem")]
    client_cert = ["--tls-cert", str(pki / "node.pem"), "--tls-key", str(pki / "node.key")]

    served = _spider(secured_cluster, *tls, *client_cert)
    assert served.returncode == CliExit.OK, served.stderr
    assert json.loads(served.stdout)["storage"]

    missing = _spider(secured_cluster, "--tls-ca", str(pki / "absent.pem"))
    assert missing.returncode == CliExit.USAGE
    assert "absent.pem" in missing.stderr
