"""TLS, mutual TLS and the cluster credential, over real gRPC on loopback.

Certificates come from a throwaway CA (``tests/certificates.py``). Real sockets mean real time:
time appears only as bounds that a broken feature would hit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import HeartbeatRequest, SchedulerServiceStub
from spider.proto.storage import SessionManagementServiceStub
from spider.rpc.auth import CLUSTER_TOKEN_HEADER, ClusterAuth
from tests.certificates import Pki, make_pki

from .rpc_services import FixedSession, RecordingScheduler, running_server

TEST_BOUND = 10.0
TOKEN = "0123456789abcdef-cluster-secret"
BEAT = HeartbeatRequest(execution_manager_id=7)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _heartbeat(endpoint: rpc.Endpoint, config: rpc.RpcConfig) -> Void:
    with trio.fail_after(TEST_BOUND):
        async with rpc.connect_channel(endpoint, config) as channel:
            return await channel.call(SchedulerServiceStub.heartbeat, BEAT, deadline=5)


async def test_tls_serves_a_client_that_trusts_the_ca(pki: Pki) -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(tls=pki.cluster.server_tls())
    async with running_server([scheduler], config=server) as endpoint:
        reply = await _heartbeat(
            endpoint, rpc.RpcConfig(tls=pki.cluster.client_tls(with_cert=False))
        )
    assert reply == Void()
    assert len(scheduler.heartbeat_peers) == 1


async def test_a_client_that_trusts_another_ca_cannot_connect(pki: Pki) -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(tls=pki.cluster.server_tls())
    async with running_server([scheduler], config=server) as endpoint:
        with pytest.raises(rpc.UnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await _heartbeat(endpoint, rpc.RpcConfig(tls=pki.stranger.client_tls(with_cert=False)))
    assert scheduler.heartbeat_peers == []


async def test_a_plaintext_client_gets_no_answer_from_a_tls_server(pki: Pki) -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(tls=pki.cluster.server_tls())
    async with running_server([scheduler], config=server) as endpoint:
        with pytest.raises(rpc.RpcError):
            await _heartbeat(endpoint, rpc.RpcConfig())
    assert scheduler.heartbeat_peers == []


async def test_mutual_tls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(tls=pki.cluster.server_tls(require_client_cert=True))
    async with running_server([scheduler], config=server) as endpoint:
        # TLS 1.3 finishes the client's side of the handshake before the server checks the
        # client's certificate: the refusal arrives as a lost connection.
        with pytest.raises(rpc.UnavailableError):
            await _heartbeat(endpoint, rpc.RpcConfig(tls=pki.cluster.client_tls(with_cert=False)))
        stranger = rpc.TlsConfig(ca=pki.cluster.ca, cert=pki.stranger.cert, key=pki.stranger.key)
        with pytest.raises(rpc.UnavailableError):
            await _heartbeat(endpoint, rpc.RpcConfig(tls=stranger))
        assert scheduler.heartbeat_peers == []
        reply = await _heartbeat(endpoint, rpc.RpcConfig(tls=pki.cluster.client_tls()))
    assert reply == Void()
    assert len(scheduler.heartbeat_peers) == 1


def _token_config(token: str | None) -> rpc.RpcConfig:
    return rpc.RpcConfig(metadata=() if token is None else ((CLUSTER_TOKEN_HEADER, token),))


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", TOKEN[:-1]])
async def test_a_guarded_call_without_the_credential_is_unauthenticated(token: str | None) -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(auth=ClusterAuth(TOKEN))
    async with running_server([scheduler], config=server) as endpoint:
        with pytest.raises(rpc.UnauthenticatedError, match="cluster credential"):
            await _heartbeat(endpoint, _token_config(token))
    assert scheduler.heartbeat_peers == []  # refused before the handler ran


async def test_a_guarded_call_with_the_credential_is_served() -> None:
    scheduler = RecordingScheduler()
    server = rpc.ServerConfig(auth=ClusterAuth(TOKEN))
    async with running_server([scheduler], config=server) as endpoint:
        reply = await _heartbeat(endpoint, _token_config(TOKEN))
    assert reply == Void()
    assert len(scheduler.heartbeat_peers) == 1


async def test_open_services_need_no_credential() -> None:
    auth = ClusterAuth(TOKEN, frozenset({"storage.SessionManagementService"}))
    server = rpc.ServerConfig(auth=auth)
    services: list[rpc.ServiceBase] = [RecordingScheduler(), FixedSession(42)]
    async with (
        running_server(services, config=server) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with trio.fail_after(TEST_BOUND):
            session = await channel.call(SessionManagementServiceStub.get_session, Void())
            with pytest.raises(rpc.UnauthenticatedError):
                await channel.call(SchedulerServiceStub.heartbeat, BEAT)
    assert session.session_id == 42


async def test_tls_and_the_credential_together(pki: Pki) -> None:
    server = rpc.ServerConfig(
        tls=pki.cluster.server_tls(require_client_cert=True), auth=ClusterAuth(TOKEN)
    )
    client = rpc.RpcConfig(tls=pki.cluster.client_tls(), metadata=((CLUSTER_TOKEN_HEADER, TOKEN),))
    async with running_server([RecordingScheduler()], config=server) as endpoint:
        assert await _heartbeat(endpoint, client) == Void()
        with pytest.raises(rpc.UnauthenticatedError):
            await _heartbeat(endpoint, rpc.RpcConfig(tls=pki.cluster.client_tls()))


def _security_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "spider.rpc" and record.getMessage().startswith("SECURITY")
    ]


@pytest.mark.parametrize(
    ("host", "secured", "warned"),
    [
        ("127.0.0.1", False, False),
        ("0.0.0.0", False, True),
        ("0.0.0.0", True, False),
    ],
)
async def test_listening_beyond_loopback_without_auth_warns(
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    host: str,
    secured: bool,
    warned: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="spider.rpc")
    server = (
        rpc.ServerConfig(tls=pki.cluster.server_tls(), auth=ClusterAuth(TOKEN))
        if secured
        else rpc.ServerConfig()
    )
    async with running_server([FixedSession(1)], config=server, host=host):
        pass
    warnings = _security_warnings(caplog)
    assert bool(warnings) == warned, warnings
    if warned:
        assert "without a cluster credential and TLS" in warnings[0]


def test_the_loopback_test_knows_its_hosts() -> None:
    from spider.rpc._server import is_loopback

    assert all(is_loopback(host) for host in ("127.0.0.1", "::1", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "", "::", "10.0.0.1", "example.org"))


def test_a_bad_certificate_file_is_a_config_error_naming_it(tmp_path: Path, pki: Pki) -> None:
    from spider.core.config import ConfigError
    from spider.rpc._tls import client_context, server_context

    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        client_context(rpc.TlsConfig(ca=missing))
    with pytest.raises(ConfigError, match="cert/key"):
        server_context(rpc.TlsConfig(cert=pki.cluster.cert, key=pki.stranger.key))
    with pytest.raises(ValueError, match="go together"):
        rpc.TlsConfig(cert=pki.cluster.cert)
    with pytest.raises(ValueError, match=r"needs tls\.ca"):
        rpc.TlsConfig(cert=pki.cluster.cert, key=pki.cluster.key, require_client_cert=True)
