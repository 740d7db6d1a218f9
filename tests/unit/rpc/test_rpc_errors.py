"""The one status and transport-failure mapping of ``spider.rpc``."""

from __future__ import annotations

import pytest

from spider import rpc
from spider.core.errors import SpiderError
from spider.proto.common import Void
from spider.proto.scheduler import SchedulerServiceStub
from spider.rpc._channel import _reply
from spider.rpc._client_connection import Answer

HEARTBEAT = SchedulerServiceStub.heartbeat

EXPECTED_CLASS = {
    rpc.Status.CANCELLED: rpc.CallCancelledError,
    rpc.Status.UNKNOWN: rpc.UnknownError,
    rpc.Status.INVALID_ARGUMENT: rpc.InvalidArgumentError,
    rpc.Status.DEADLINE_EXCEEDED: rpc.DeadlineExceededError,
    rpc.Status.NOT_FOUND: rpc.NotFoundError,
    rpc.Status.ALREADY_EXISTS: rpc.AlreadyExistsError,
    rpc.Status.PERMISSION_DENIED: rpc.PermissionDeniedError,
    rpc.Status.RESOURCE_EXHAUSTED: rpc.ResourceExhaustedError,
    rpc.Status.FAILED_PRECONDITION: rpc.FailedPreconditionError,
    rpc.Status.ABORTED: rpc.AbortedError,
    rpc.Status.OUT_OF_RANGE: rpc.OutOfRangeError,
    rpc.Status.UNIMPLEMENTED: rpc.UnimplementedError,
    rpc.Status.INTERNAL: rpc.InternalError,
    rpc.Status.UNAVAILABLE: rpc.UnavailableError,
    rpc.Status.DATA_LOSS: rpc.DataLossError,
    rpc.Status.UNAUTHENTICATED: rpc.UnauthenticatedError,
}
TRANSIENT = {rpc.Status.UNAVAILABLE, rpc.Status.DEADLINE_EXCEEDED}
NON_OK = [status for status in rpc.Status if status is not rpc.Status.OK]


def test_every_non_ok_status_has_its_own_class() -> None:
    assert set(EXPECTED_CLASS) == set(NON_OK)
    assert len(set(EXPECTED_CLASS.values())) == len(NON_OK)


@pytest.mark.parametrize("status", NON_OK, ids=lambda status: status.name)
def test_status_maps_to_its_error(status: rpc.Status) -> None:
    error = rpc.error_for_status(status, "the server's words", method="/pkg.Svc/Method")

    assert type(error) is EXPECTED_CLASS[status]
    assert isinstance(error, rpc.RpcError)
    assert isinstance(error, SpiderError)
    assert error.status is status
    assert error.message == "the server's words"
    assert error.method == "/pkg.Svc/Method"
    assert error.is_transient is (status in TRANSIENT)
    assert str(error) == f"/pkg.Svc/Method failed with {status.name}: the server's words"


def test_an_ok_status_without_a_reply_is_still_an_error() -> None:
    assert type(rpc.error_for_status(rpc.Status.OK, "")) is rpc.UnknownError


def test_a_status_without_message_says_so() -> None:
    error = rpc.error_for_status(rpc.Status.UNIMPLEMENTED, "", method="Stub.method")

    assert type(error) is rpc.UnimplementedError
    assert error.message == ""
    assert str(error) == "Stub.method failed with UNIMPLEMENTED: (no message)"


def _answer(**fields: object) -> Answer:
    answer = Answer(http_status=b"200")
    for name, value in fields.items():
        setattr(answer, name, value)
    return answer


def _framed(message: bytes) -> bytearray:
    return bytearray(b"\0" + len(message).to_bytes(4, "big") + message)


@pytest.mark.parametrize("status", NON_OK, ids=lambda status: status.name)
def test_an_answer_s_status_maps_to_its_error(status: rpc.Status) -> None:
    with pytest.raises(rpc.RpcError) as raised:
        _reply(HEARTBEAT, _answer(grpc_status=status.value, grpc_message="no such job"))

    assert type(raised.value) is EXPECTED_CLASS[status]
    assert raised.value.message == "no such job"
    assert raised.value.method == HEARTBEAT.route


def test_an_ok_answer_carries_its_reply() -> None:
    reply = _reply(HEARTBEAT, _answer(grpc_status=0, body=_framed(Void().SerializeToString())))

    assert reply == Void()


@pytest.mark.parametrize(
    ("answer", "expected", "words"),
    [
        (_answer(failure="the server closed the connection"), rpc.UnavailableError, "closed"),
        (_answer(reset_code=7), rpc.UnavailableError, "reset"),
        (_answer(http_status=b"503"), rpc.UnavailableError, "503"),
        (_answer(http_status=b"404"), rpc.UnimplementedError, "404"),
        (_answer(http_status=b"418"), rpc.UnknownError, "418"),
        (_answer(), rpc.UnknownError, "grpc-status"),
        (_answer(grpc_status=99), rpc.UnknownError, ""),
        (_answer(grpc_status=0), rpc.UnknownError, "without one whole reply"),
        (_answer(grpc_status=0, body=bytearray(b"\1\0\0\0\0")), rpc.UnknownError, "reply"),
        (_answer(grpc_status=0, body=_framed(b"\xff\xff")), rpc.InternalError, "Void"),
    ],
    ids=[
        "connection-lost",
        "stream-reset",
        "http-503",
        "http-404",
        "http-other",
        "no-grpc-status",
        "unknown-status-code",
        "ok-without-reply",
        "ok-compressed-reply",
        "ok-undecodable-reply",
    ],
)
def test_transport_failures_map_to_errors(
    answer: Answer, expected: type[rpc.RpcError], words: str
) -> None:
    with pytest.raises(rpc.RpcError) as raised:
        _reply(HEARTBEAT, answer)

    assert type(raised.value) is expected
    assert words in raised.value.message


def test_connection_failures_and_deadlines_are_transient() -> None:
    assert rpc.UnavailableError("lost").is_transient
    assert rpc.DeadlineExceededError("late").is_transient
    assert not rpc.InternalError("broken").is_transient


def test_listen_error_is_an_os_error_and_a_spider_error() -> None:
    error = rpc.ListenError("cannot listen")

    assert isinstance(error, OSError)
    assert isinstance(error, SpiderError)
