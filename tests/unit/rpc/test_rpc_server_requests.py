"""What ``serve`` answers to bodies that are not a request: a status code for each, one WARNING
line without a traceback, and a server that keeps serving. Status messages are bounded.

Raw bodies go through grpcio (no serializer: the bytes are sent as they are).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
import trio

from spider import rpc
from spider.core.bounds import MAX_STATUS_MESSAGE_CHARS
from spider.proto.common import Void
from spider.proto.scheduler import SchedulerServiceStub
from spider.proto.storage import GetSessionResponse, SessionManagementServiceBase
from spider.rpc._log_limit import PeerLogLimit

from .rpc_services import LOOPBACK, RecordingScheduler

HEARTBEAT = SchedulerServiceStub.heartbeat.route
SMALL_LIMIT = 1000


class LongWindedSession(SessionManagementServiceBase):
    """Answers with an error whose message is a million characters long."""

    async def get_session(self, common_void: Void) -> GetSessionResponse:
        await trio.lowlevel.checkpoint()
        raise rpc.InvalidArgumentError("x" * 1_000_000)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    config = rpc.ServerConfig(max_request_bytes=SMALL_LIMIT)
    services: list[rpc.ServiceBase] = [RecordingScheduler(), LongWindedSession()]
    async with trio.open_nursery() as nursery:
        yield await nursery.start(
            functools.partial(rpc.serve, services, LOOPBACK, 0, config=config)
        )
        nursery.cancel_scope.cancel()


def _raw_call(port: int, route: str, body: bytes) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        try:
            channel.unary_unary(route)(body, timeout=10)
        except grpc.RpcError as error:
            return error.code(), error.details()
    return grpc.StatusCode.OK, ""


async def raw_call(port: int, route: str, body: bytes) -> tuple[grpc.StatusCode, str]:
    return await trio.to_thread.run_sync(_raw_call, port, route, body)


def _length_delimited(field: int, payload: bytes) -> bytes:
    """A protobuf field of wire type 2 (an unknown field to any message here)."""
    size = len(payload)
    varint = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        varint.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([field << 3 | 2]) + bytes(varint) + payload


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xff\xff\xff", id="garbage"),
        pytest.param(b"\x08", id="truncated-varint"),
        pytest.param(b"\x0a\x05ab", id="truncated-length-delimited"),
        pytest.param(b"\x0d\x01\x02\x03\x04" + b"\x0f", id="bad-wire-type"),
    ],
)
async def test_an_undecodable_body_is_invalid_argument_logged_without_traceback(
    port: int, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    code, message = await raw_call(port, HEARTBEAT, body)

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "HeartbeatRequest" in message
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert warnings[0].exc_info is None
    assert "\n" not in warnings[0].getMessage()
    # The server still serves.
    assert await raw_call(port, HEARTBEAT, b"") == (grpc.StatusCode.OK, "")


async def test_a_request_over_the_limit_is_refused_before_it_is_read(port: int) -> None:
    body = _length_delimited(15, b"\x00" * (SMALL_LIMIT + 1))

    code, message = await raw_call(port, HEARTBEAT, body)

    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit of {SMALL_LIMIT} bytes" in message
    assert "max_request_bytes" in message
    at_limit = _length_delimited(15, b"\x00" * (SMALL_LIMIT - 3))
    assert len(at_limit) == SMALL_LIMIT
    assert await raw_call(port, HEARTBEAT, at_limit) == (grpc.StatusCode.OK, "")


async def test_a_long_status_message_is_cut_before_it_goes_into_a_trailer(port: int) -> None:
    code, message = await raw_call(port, "/storage.SessionManagementService/GetSession", b"")

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(message) <= MAX_STATUS_MESSAGE_CHARS
    assert message.endswith("[truncated]")


async def test_a_flood_of_bad_bodies_logs_a_few_lines_and_keeps_serving(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="spider.rpc")
    for _ in range(40):
        code, _ = await raw_call(port, HEARTBEAT, b"\xff\xff\xff")
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    lines = [r for r in caplog.records if r.name == "spider.rpc"]
    assert len(lines) == PeerLogLimit().burst
    assert all("127.0.0.1" in r.getMessage() for r in lines)
    # The server still answers a good call at once.
    code, _ = await raw_call(port, HEARTBEAT, b"")
    assert code is grpc.StatusCode.OK
