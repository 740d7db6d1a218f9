"""The one mapping between gRPC statuses, transport failures and ``spider.rpc`` errors."""

from __future__ import annotations

import asyncio

import h2.exceptions
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from spider.rpc.errors import (
    AbortedError,
    AlreadyExistsError,
    CallCancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcError,
    Status,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)

_ERROR_BY_STATUS: dict[Status, type[RpcError]] = {
    cls.status: cls
    for cls in (
        CallCancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def error_for_status(status: Status, message: str, *, method: str | None = None) -> RpcError:
    """The error a call ending with ``status`` and ``message`` raises.

    ``Status.OK`` is not an error; it maps to ``UnknownError`` so that a peer that sends an OK
    status without a response still fails the call loudly.
    """
    return _ERROR_BY_STATUS.get(status, UnknownError)(message, method=method)


def error_for_call_failure(exc: BaseException, *, method: str) -> RpcError | None:
    """Translate what grpclib or asyncio raised out of a client call, or ``None`` if foreign.

    ``None`` means the exception is not a call failure (a ``TypeError`` from a wrong request
    type, say): it is a bug in the caller and should propagate unchanged.
    """
    if isinstance(exc, GRPCError):
        return error_for_status(exc.status, exc.message or "", method=method)
    if isinstance(exc, StreamTerminatedError):
        # "Connection lost", "Stream reset by peer": the server went away mid-call.
        return UnavailableError(f"the connection failed during the call: {exc}", method=method)
    if isinstance(exc, TimeoutError):
        # grpclib's own deadline timer (asyncio.TimeoutError is TimeoutError since 3.11).
        # Checked before OSError, of which TimeoutError is a subclass.
        return DeadlineExceededError("the call's deadline expired", method=method)
    if isinstance(exc, OSError):
        # Connection refused or reset, host unreachable, name not resolvable: gRPC calls all
        # of these UNAVAILABLE.
        reason = exc.strerror or str(exc) or type(exc).__name__
        return UnavailableError(f"cannot reach the server: {reason}", method=method)
    if isinstance(exc, (ProtocolError, h2.exceptions.H2Error)):
        return InternalError(f"HTTP/2 protocol violation: {exc}", method=method)
    if isinstance(exc, asyncio.CancelledError):
        # Only reachable when asyncio cancelled the call without Trio asking for it, which
        # happens when the bridge shuts down underneath a call.
        return CallCancelledError(
            "the call was cancelled on the asyncio side; is the RPC bridge closing?",
            method=method,
        )
    return None
