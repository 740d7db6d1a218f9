"""Storage and the scheduler with TLS and the cluster credential on, over real gRPC on loopback.

Storage runs in process (``serve_storage``, SQLite in a temporary directory), the scheduler too
(``run_scheduler``, registering with that storage over gRPC, so it must present the credential
itself). Calls go through ``spider.rpc`` channels, as EMs and clients make them.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from spider import rpc
from spider.client import ClientConfig, open_client
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.common import Void
from spider.rpc.auth import CLUSTER_TOKEN_HEADER
from spider.scheduler import SchedulerConfig, run_scheduler
from spider.scheduler.errors import StorageRejected
from spider.storage.config import StorageConfig
from spider.storage.db import SqliteConfig
from spider.storage.server import StorageLaunch, serve_storage
from tests.certificates import Pki, make_pki

LOOPBACK = "127.0.0.1"
TOKEN = "e2e-cluster-secret-0123456789"
TEST_BOUND = 30.0


@pytest.fixture(autouse=True)
def collect_left_transports() -> Iterator[None]:
    """Collect, after each test, the asyncio transports its connections left for the garbage
    collector (several of these connections are refused on purpose), with their "unclosed
    transport" ResourceWarning ignored. Left to the collector, they were collected in a later
    test, which then failed on the warning (CI saw nine at once)."""
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed transport", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@attrs.frozen
class SecuredCluster:
    storage: rpc.Endpoint
    scheduler: rpc.Endpoint
    tls: rpc.TlsConfig

    def member(self) -> rpc.RpcConfig:
        """What an EM connects with: TLS with its certificate, and the cluster credential."""
        return rpc.RpcConfig(tls=self.tls, metadata=((CLUSTER_TOKEN_HEADER, TOKEN),))

    def outsider(self) -> rpc.RpcConfig:
        """A client that passes TLS (mutual, even) but holds no cluster credential."""
        return rpc.RpcConfig(tls=self.tls)


@asynccontextmanager
async def secured_cluster(directory: Path, pki: Pki) -> AsyncIterator[SecuredCluster]:
    token = directory / "cluster-token"
    token.write_text(TOKEN + "\n")
    security = rpc.SecurityConfig(
        tls=pki.cluster.server_tls(require_client_cert=True), cluster_token_file=token
    )
    launch = StorageLaunch(
        StorageConfig(host=LOOPBACK, port=0, security=security),
        SqliteConfig(directory / "storage.db"),
    )
    async with trio.open_nursery() as nursery:
        storage_port = await nursery.start(serve_storage, launch)
        scheduler = SchedulerConfig(
            host=LOOPBACK,
            port=0,
            storage_endpoint=rpc.EndpointConfig(LOOPBACK, storage_port),
            security=security,
        )
        scheduler_port = await nursery.start(run_scheduler, scheduler)
        yield SecuredCluster(
            rpc.Endpoint(LOOPBACK, storage_port),
            rpc.Endpoint(LOOPBACK, scheduler_port),
            pki.cluster.client_tls(),
        )
        nursery.cancel_scope.cancel(reason="the test is done")


async def _register_em(endpoint: rpc.Endpoint, config: rpc.RpcConfig) -> int:
    async with rpc.connect_channel(endpoint, config) as storage:
        reply = await storage.call(
            storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
            storage_pb.RegisterExecutionManagerRequest(ip_address=LOOPBACK),
        )
    return reply.registration.execution_manager_id


async def _poll(endpoint: rpc.Endpoint, config: rpc.RpcConfig) -> object:
    async with rpc.connect_channel(endpoint, config) as storage:
        return await storage.call(
            storage_pb.InboundQueueServiceStub.poll_ready_tasks,
            storage_pb.PollReadyTasksRequest(max_items=8, wait_ms=0),
        )


async def _scheduler_heartbeat(endpoint: rpc.Endpoint, config: rpc.RpcConfig, em: int) -> Void:
    async with rpc.connect_channel(endpoint, config) as scheduler:
        return await scheduler.call(
            scheduler_pb.SchedulerServiceStub.heartbeat,
            scheduler_pb.HeartbeatRequest(execution_manager_id=em),
        )


async def test_em_and_scheduler_calls_need_the_cluster_credential(tmp_path: Path, pki: Pki) -> None:
    with trio.fail_after(TEST_BOUND):
        async with secured_cluster(tmp_path, pki) as cluster:
            outsider = cluster.outsider()
            with pytest.raises(rpc.UnauthenticatedError):
                await _register_em(cluster.storage, outsider)
            with pytest.raises(rpc.UnauthenticatedError):
                await _poll(cluster.storage, outsider)
            with pytest.raises(rpc.UnauthenticatedError):
                await _scheduler_heartbeat(cluster.scheduler, outsider, 1)

            em = await _register_em(cluster.storage, cluster.member())
            assert em > 0
            await _poll(cluster.storage, cluster.member())
            assert await _scheduler_heartbeat(cluster.scheduler, cluster.member(), em) == Void()


async def test_client_calls_stay_open_to_tls_clients(tmp_path: Path, pki: Pki) -> None:
    with trio.fail_after(TEST_BOUND):
        async with (
            secured_cluster(tmp_path, pki) as cluster,
            rpc.connect_channel(cluster.storage, cluster.outsider()) as storage,
        ):
            group = await storage.call(
                storage_pb.ResourceGroupManagementServiceStub.add_resource_group,
                storage_pb.AddResourceGroupRequest(
                    external_resource_group_id="team", password=b"pw"
                ),
            )
    assert group.resource_group_id > 0


async def test_storage_refuses_a_client_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    with trio.fail_after(TEST_BOUND):
        async with secured_cluster(tmp_path, pki) as cluster:
            no_cert = rpc.RpcConfig(tls=pki.cluster.client_tls(with_cert=False))
            with pytest.raises(rpc.UnavailableError):
                await _register_em(cluster.storage, no_cert)
            wrong_ca = rpc.RpcConfig(tls=pki.stranger.client_tls())
            with pytest.raises(rpc.UnavailableError):
                await _poll(cluster.storage, wrong_ca)


async def test_a_scheduler_with_the_wrong_credential_stops_on_storage_s_refusal(
    tmp_path: Path, pki: Pki
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-cluster-secret")
    with trio.fail_after(TEST_BOUND):
        async with secured_cluster(tmp_path, pki) as cluster:
            scheduler = SchedulerConfig(
                host=LOOPBACK,
                port=0,
                storage_endpoint=rpc.EndpointConfig(LOOPBACK, cluster.storage.port),
                security=rpc.SecurityConfig(tls=pki.cluster.server_tls(), cluster_token_file=wrong),
            )
            with pytest.raises(StorageRejected, match=r"check security\.cluster_token_file"):
                await run_scheduler(scheduler)


async def test_the_python_client_works_over_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    config = ClientConfig(rpc=rpc.RpcConfig(tls=pki.cluster.client_tls()))
    with trio.fail_after(TEST_BOUND):
        async with (
            secured_cluster(tmp_path, pki) as cluster,
            open_client(cluster.storage, config) as client,
        ):
            group = await client.add_resource_group("team")
            status = await client.cluster_status()
    assert group > 0
    assert status.details is not None
