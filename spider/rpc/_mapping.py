"""The one mapping between gRPC statuses, transport failures and ``spider.rpc`` errors."""

from __future__ import annotations

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


_STATUS_BY_HTTP = {
    b"400": Status.INTERNAL,
    b"401": Status.UNAUTHENTICATED,
    b"403": Status.PERMISSION_DENIED,
    b"404": Status.UNIMPLEMENTED,
    b"429": Status.UNAVAILABLE,
    b"502": Status.UNAVAILABLE,
    b"503": Status.UNAVAILABLE,
    b"504": Status.UNAVAILABLE,
}


def status_for_http(http_status: bytes | None) -> Status:
    """The gRPC status of an answer whose HTTP status is not 200 and that carries no
    ``grpc-status``: gRPC's own table (a proxy or a server that is not gRPC answered)."""
    return _STATUS_BY_HTTP.get(http_status or b"", Status.UNKNOWN)
