"""``serve_http``: the three endpoints over real HTTP on loopback, and ``Readiness``."""

from __future__ import annotations

import json
import socket

import prometheus_client
import pytest
import trio

from spider.observability import MetricsConfig, Readiness, serve_http
from spider.rpc import ListenError
from tests.metrics_scrape import get


async def _get(port: int, path: str) -> tuple[int, bytes]:
    return await trio.to_thread.run_sync(get, port, path)


async def test_readyz_answers_503_until_every_condition_holds() -> None:
    readiness = Readiness()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_http(
                MetricsConfig(port=0), "test", readiness=readiness, task_status=task_status
            )
        )
        status, body = await _get(port, "/readyz")
        assert status == 503
        assert json.loads(body) == {"conditions": {}, "ready": False}
        database_down = ["disk full"]
        with (
            readiness.condition("execution manager", "registering with storage") as em,
            readiness.check("storage", lambda: database_down[0] if database_down else None),
        ):
            status, body = await _get(port, "/readyz")
            assert status == 503
            assert json.loads(body)["conditions"] == {
                "execution manager": "registering with storage",
                "storage": "disk full",
            }
            em.ready()
            database_down.clear()
            status, body = await _get(port, "/readyz")
            assert (status, json.loads(body)["ready"]) == (200, True)
        # The block ended: its conditions went with it.
        assert (await _get(port, "/readyz"))[0] == 503
        nursery.cancel_scope.cancel()


async def test_healthz_metrics_and_unknown_paths() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("spider_test_things_total", "Things.", registry=registry)
    counter.inc(3)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_http(
                MetricsConfig(port=0), "test", registry=registry, task_status=task_status
            )
        )
        assert await _get(port, "/healthz") == (200, b"ok\n")
        status, body = await _get(port, "/metrics")
        assert status == 200
        assert b"spider_test_things_total 3.0" in body
        status, body = await _get(port, "/nothing")
        assert status == 404
        assert b"/metrics" in body
        nursery.cancel_scope.cancel()


async def test_a_busy_port_is_a_listen_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=r"metrics\.port"):
            await serve_http(MetricsConfig(port=port), "test")


def test_a_name_reported_twice_is_told_apart() -> None:
    readiness = Readiness()
    with readiness.check("storage", lambda: None), readiness.check("storage", lambda: "down"):
        assert readiness.report() == {"storage": None, "storage #2": "down"}
        assert not readiness.ready()


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"metrics\.port"):
        MetricsConfig(port=70000)
