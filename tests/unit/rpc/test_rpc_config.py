"""``Endpoint``, ``RpcConfig`` and ``ServerConfig``: named defaults, never unbounded."""

from __future__ import annotations

import math

import pytest

from spider import rpc


def test_defaults_are_bounded_and_match_upstream_retry() -> None:
    config = rpc.RpcConfig()

    assert config.default_deadline == rpc.DEFAULT_DEADLINE
    assert math.isfinite(config.default_deadline)
    assert config.connection_pool_size == 1
    assert config.retry == rpc.RPC_RETRY_BACKOFF
    # docs/upstream.md#retries-and-deadlines: 100 ms doubling to 3 s plus 0-20 ms, 10 retries
    # after the first try.
    assert list(rpc.RPC_RETRY_BACKOFF.delays()) == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0, 3.0, 3.0], abs=0.02
    )
    assert rpc.ServerConfig().shutdown_grace == rpc.SHUTDOWN_GRACE


@pytest.mark.parametrize("deadline", [0.0, -1.0, math.inf, math.nan])
def test_an_unbounded_or_empty_default_deadline_is_refused(deadline: float) -> None:
    with pytest.raises(ValueError, match="default_deadline"):
        rpc.RpcConfig(default_deadline=deadline)


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="connection_pool_size"):
        rpc.RpcConfig(connection_pool_size=0)


def test_shutdown_grace_is_bounded() -> None:
    with pytest.raises(ValueError, match="shutdown_grace"):
        rpc.ServerConfig(shutdown_grace=math.inf)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.1:50051", rpc.Endpoint("127.0.0.1", 50051)),
        ("spider-storage:50051", rpc.Endpoint("spider-storage", 50051)),
        ("[::1]:50052", rpc.Endpoint("::1", 50052)),
    ],
)
def test_endpoint_parses_and_prints_host_and_port(text: str, endpoint: rpc.Endpoint) -> None:
    assert rpc.Endpoint.parse(text) == endpoint
    assert str(endpoint) == text


@pytest.mark.parametrize("text", ["127.0.0.1", ":50051", "host:", "host:port", "host:70000"])
def test_a_malformed_endpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|outside 0\.\.65535"):
        rpc.Endpoint.parse(text)
