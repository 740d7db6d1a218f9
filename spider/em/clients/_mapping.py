"""Upstream Spider's mapping of gRPC failures onto the EM's client errors (reference §5.2).

Each service maps status codes differently, as upstream's clients do. On top of upstream,
``DEADLINE_EXCEEDED`` counts as a transport failure everywhere: upstream set no deadlines, so it
never saw one, and a deadline that passed is as retryable as a refused connection.
"""

from __future__ import annotations

from typing import Final

from spider.em.errors import (
    CacheStale,
    ClientError,
    IllegalId,
    InvalidInput,
    MarkedDead,
    ServerError,
    StaleSession,
    TransportError,
)
from spider.rpc import RpcError, Status

_STORAGE: dict[Status, type[ClientError]] = {
    Status.NOT_FOUND: StaleSession,
    Status.FAILED_PRECONDITION: CacheStale,
    Status.INVALID_ARGUMENT: InvalidInput,
}

_LIVENESS: dict[Status, type[ClientError]] = {
    Status.FAILED_PRECONDITION: MarkedDead,
    Status.INVALID_ARGUMENT: IllegalId,
}


def storage_error(error: RpcError, operation: str) -> ClientError:
    """``TaskInstanceManagementService``: stale session, stale cache, bad input, else server."""
    if error.is_transient:
        return TransportError(error.message, operation=operation)
    return _STORAGE.get(error.status, ServerError)(error.message, operation=operation)


def liveness_error(error: RpcError, operation: str) -> ClientError:
    """``ExecutionManagerLivenessService``: marked dead, illegal id, else transport.

    Upstream treats every other code, ``INTERNAL`` included, as a transport failure, so a
    storage that fails internally delays a heartbeat instead of stopping the EM.
    """
    return _LIVENESS.get(error.status, TransportError)(error.message, operation=operation)


def scheduler_error(error: RpcError, operation: str) -> ClientError:
    """``SchedulerService``: transport for transient failures, server for everything else."""
    if error.is_transient:
        return TransportError(error.message, operation=operation)
    return ServerError(error.message, operation=operation)


GRPCLIB_UNKNOWN_METHOD: Final = "Missing content-type header"
"""What a grpclib client reports when a grpclib server answers a method it does not serve:
the server's trailers-only UNIMPLEMENTED carries no content-type, which the client checks
first and reports as UNKNOWN with this message (grpclib 0.4)."""


def extension_missing(error: RpcError) -> bool:
    """Whether ``error`` says the peer does not serve the method: UNIMPLEMENTED, or its
    grpclib-to-grpclib form."""
    if error.status is Status.UNIMPLEMENTED:
        return True
    return error.status is Status.UNKNOWN and error.message == GRPCLIB_UNKNOWN_METHOD
