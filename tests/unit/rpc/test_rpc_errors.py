"""The one status and transport-failure mapping of ``spider.rpc``."""

from __future__ import annotations

import asyncio
import errno

import h2.exceptions
import pytest
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from spider import rpc
from spider.core.errors import SpiderError
from spider.rpc._mapping import error_for_call_failure

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


@pytest.mark.parametrize("status", NON_OK, ids=lambda status: status.name)
def test_grpc_error_from_a_call_maps_by_status(status: rpc.Status) -> None:
    error = error_for_call_failure(GRPCError(status, "no such job"), method="Stub.method")

    assert type(error) is EXPECTED_CLASS[status]
    assert error.message == "no such job"
    assert error.method == "Stub.method"


def test_an_ok_status_without_a_reply_is_still_an_error() -> None:
    assert type(rpc.error_for_status(rpc.Status.OK, "")) is rpc.UnknownError


def test_a_status_without_message_says_so() -> None:
    error = error_for_call_failure(GRPCError(rpc.Status.UNIMPLEMENTED), method="Stub.method")

    assert type(error) is rpc.UnimplementedError
    assert error.message == ""
    assert str(error) == "Stub.method failed with UNIMPLEMENTED: (no message)"


@pytest.mark.parametrize(
    ("failure", "expected", "words"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            rpc.UnavailableError,
            "Connection refused",
        ),
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            rpc.UnavailableError,
            "reset by peer",
        ),
        (OSError(errno.EHOSTUNREACH, "No route to host"), rpc.UnavailableError, "No route to host"),
        (StreamTerminatedError("Connection lost"), rpc.UnavailableError, "Connection lost"),
        (TimeoutError(), rpc.DeadlineExceededError, "deadline"),
        (ProtocolError("bad frame"), rpc.InternalError, "bad frame"),
        (h2.exceptions.ProtocolError("bad preface"), rpc.InternalError, "bad preface"),
        (asyncio.CancelledError(), rpc.CallCancelledError, "bridge"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_transport_failures_map_to_errors(
    failure: BaseException, expected: type[rpc.RpcError], words: str
) -> None:
    error = error_for_call_failure(failure, method="Stub.method")

    assert type(error) is expected
    assert words in error.message
    assert error.method == "Stub.method"


def test_connection_failures_and_deadlines_are_transient() -> None:
    refused = error_for_call_failure(ConnectionRefusedError(errno.ECONNREFUSED, "x"), method="m")
    lost = error_for_call_failure(StreamTerminatedError("Connection lost"), method="m")
    late = error_for_call_failure(TimeoutError(), method="m")
    broken = error_for_call_failure(ProtocolError("x"), method="m")

    assert refused is not None
    assert refused.is_transient
    assert lost is not None
    assert lost.is_transient
    assert late is not None
    assert late.is_transient
    assert broken is not None
    assert not broken.is_transient


def test_foreign_bugs_are_not_translated() -> None:
    assert error_for_call_failure(TypeError("wrong request type"), method="m") is None
    assert error_for_call_failure(KeyError("x"), method="m") is None


def test_listen_error_is_an_os_error_and_a_spider_error() -> None:
    error = rpc.ListenError("cannot listen")

    assert isinstance(error, OSError)
    assert isinstance(error, SpiderError)
