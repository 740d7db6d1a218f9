"""The served calls' latency, per method and status code, for Prometheus."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import prometheus_client

from spider.rpc.errors import RpcError

HANDLING_SECONDS: Final = prometheus_client.Histogram(
    "spider_rpc_server_handling_seconds",
    "Time from a served call's arrival to its answer, by method and status code.",
    ["method", "code"],
    # From a fraction of a millisecond (a heartbeat) to the long polls (up to a minute).
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)

_StreamHandler = Callable[[Any], Awaitable[None]]


def measured(route: str, handler: _StreamHandler) -> _StreamHandler:
    """``handler``, its calls timed into ``HANDLING_SECONDS``."""
    answered = HANDLING_SECONDS.labels(route, "OK")

    async def handle(call: Any) -> None:
        started = time.perf_counter()
        try:
            await handler(call)
        except RpcError as exc:
            HANDLING_SECONDS.labels(route, exc.status.name).observe(time.perf_counter() - started)
            raise
        except BaseException:
            # The caller went away (the stream was reset), the deadline passed or the server is
            # stopping.
            HANDLING_SECONDS.labels(route, "CANCELLED").observe(time.perf_counter() - started)
            raise
        answered.observe(time.perf_counter() - started)

    return handle
