"""The errors of ``spider.rpc``: one base, one flat subclass per gRPC status code.

A client call raises the subclass for the status the server (or the transport) produced, with
the server's message; a server handler raises one to answer with that status and message.
Higher layers map these further (``NotFoundError`` from storage's task-instance service means
a stale session, for example); keep that second mapping out of ``spider.rpc``.

``is_transient`` marks what a retry may cure: ``UNAVAILABLE`` (which is also what connection
refused or reset, a lost connection or a reset stream become) and ``DEADLINE_EXCEEDED``.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from spider.core.errors import SpiderError

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CallCancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "ListenError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RpcError",
    "Status",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
]


class Status(enum.IntEnum):
    """gRPC's status codes, as ``grpc-status`` carries them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(SpiderError):
    """A gRPC call that ended with a non-OK status, from either side of the wire.

    ``message`` is the status message exactly as the server sent it (or, for a transport
    failure, a description of what failed); ``method`` names the call for messages: the stub
    method (``SchedulerServiceStub.next_task``) on the client side.
    """

    status: ClassVar[Status] = Status.UNKNOWN
    """The gRPC status code this error stands for."""
    is_transient: ClassVar[bool] = False
    """True if the same call may succeed when retried unchanged."""

    def __init__(self, message: str, *, method: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method

    def __str__(self) -> str:
        prefix = f"{self.method} failed with " if self.method else ""
        return f"{prefix}{self.status.name}: {self.message or '(no message)'}"


class CallCancelledError(RpcError):
    """``CANCELLED``: the peer cancelled the call. Not ``trio.Cancelled``, which is our own."""

    status = Status.CANCELLED


class UnknownError(RpcError):
    """``UNKNOWN``: the server failed without saying how (what a server that crashed mid-call answers)."""

    status = Status.UNKNOWN


class InvalidArgumentError(RpcError):
    """``INVALID_ARGUMENT``: the request is malformed, whatever the server's state."""

    status = Status.INVALID_ARGUMENT


class DeadlineExceededError(RpcError):
    """``DEADLINE_EXCEEDED``: the call's deadline passed before an answer arrived.

    Transient: the server may just have been slow. The call may still have taken effect.
    """

    status = Status.DEADLINE_EXCEEDED
    is_transient = True


class NotFoundError(RpcError):
    """``NOT_FOUND``: something the request names does not exist."""

    status = Status.NOT_FOUND


class AlreadyExistsError(RpcError):
    """``ALREADY_EXISTS``: something the request creates is already there."""

    status = Status.ALREADY_EXISTS


class PermissionDeniedError(RpcError):
    """``PERMISSION_DENIED``: the caller is known but not allowed to do this."""

    status = Status.PERMISSION_DENIED


class ResourceExhaustedError(RpcError):
    """``RESOURCE_EXHAUSTED``: a quota or size limit was hit (e.g. a message over 4 MiB)."""

    status = Status.RESOURCE_EXHAUSTED


class FailedPreconditionError(RpcError):
    """``FAILED_PRECONDITION``: the system is not in the state the request needs."""

    status = Status.FAILED_PRECONDITION


class AbortedError(RpcError):
    """``ABORTED``: the server gave up on the call, typically because of a conflict."""

    status = Status.ABORTED


class OutOfRangeError(RpcError):
    """``OUT_OF_RANGE``: a value in the request is past the valid range."""

    status = Status.OUT_OF_RANGE


class UnimplementedError(RpcError):
    """``UNIMPLEMENTED``: the server does not serve this method."""

    status = Status.UNIMPLEMENTED


class InternalError(RpcError):
    """``INTERNAL``: the server broke an invariant of its own, or the peer broke HTTP/2."""

    status = Status.INTERNAL


class UnavailableError(RpcError):
    """``UNAVAILABLE``: the server cannot be reached or is shutting down.

    Transient. Connection refused or reset, a lost connection and a reset stream are reported
    as this too, with a message that says which.
    """

    status = Status.UNAVAILABLE
    is_transient = True


class DataLossError(RpcError):
    """``DATA_LOSS``: unrecoverable data loss or corruption."""

    status = Status.DATA_LOSS


class UnauthenticatedError(RpcError):
    """``UNAUTHENTICATED``: the request lacks valid credentials."""

    status = Status.UNAUTHENTICATED


class ListenError(SpiderError, OSError):
    """A server could not listen on its address (in use, not local, not resolvable)."""
