"""Fuzzed bodies for every method of every service of storage and the scheduler: random bytes,
messages with hostile values, truncated messages. Each is answered with a client error (never
UNKNOWN or INTERNAL), and the services keep answering their health probes (conftest)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings

from spider.rpc import UnaryMethod

from .conftest import HostileTarget
from .raw_client import CLIENT_ERRORS, SCHEDULER_METHODS, STORAGE_METHODS, call, request_bodies

# ~45 methods: keeps the whole module near 30 s on a shared two-core machine.
EXAMPLES_PER_METHOD = 40
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_METHOD,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check_bodies(channel: grpc.Channel, method: UnaryMethod[Any, Any], body: bytes) -> None:
    code, message = call(channel, method.route, body)
    assert code in CLIENT_ERRORS, f"{method.route}({body!r}) answered {code.name}: {message}"
    assert len(message) <= 1024


@pytest.mark.parametrize("method", STORAGE_METHODS, ids=lambda method: method.route)
def test_storage_answers_every_fuzzed_body_with_a_client_error(
    target: HostileTarget, method: UnaryMethod[Any, Any]
) -> None:
    @FUZZ_SETTINGS
    @given(body=request_bodies(method))
    def fuzz(body: bytes) -> None:
        _check_bodies(target.storage, method, body)

    fuzz()


@pytest.mark.parametrize("method", SCHEDULER_METHODS, ids=lambda method: method.route)
def test_the_scheduler_answers_every_fuzzed_body_with_a_client_error(
    target: HostileTarget, method: UnaryMethod[Any, Any]
) -> None:
    @FUZZ_SETTINGS
    @given(body=request_bodies(method))
    def fuzz(body: bytes) -> None:
        _check_bodies(target.scheduler, method, body)

    fuzz()


def test_the_strategies_reach_hostile_values() -> None:
    # The fuzzing is only as good as its bodies: ids past 2^63 and truncations must occur.
    seen: list[bytes] = []
    method = STORAGE_METHODS[1]

    @settings(max_examples=200, database=None, derandomize=True)
    @given(body=request_bodies(method))
    def collect(body: bytes) -> None:
        seen.append(body)

    collect()
    assert any(b"\xff\xff\xff\xff\xff\xff\xff\xff\x01" in body for body in seen)
    assert len(set(seen)) > 100
