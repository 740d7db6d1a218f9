"""Upstream Spider's mapping of gRPC failures onto the EM's client errors.

The mapping is in docs/upstream.md#status-codes.

Each service maps status codes differently, as upstream's clients do. On top of upstream,
``DEADLINE_EXCEEDED`` counts as a transport failure everywhere: upstream set no deadlines, so it
never saw one, and a deadline that passed is as retryable as a refused connection.
"""

from __future__ import annotations

from spider.core.errors import EM_DECLARED_DEAD
from spider.em.errors import (
    CacheStaleAnswer,
    EmClientError,
    IllegalId,
    InvalidInput,
    MarkedDead,
    ServerError,
    StaleSessionAnswer,
    TransportError,
)
from spider.rpc import RpcError, Status

_STORAGE: dict[Status, type[EmClientError]] = {
    Status.NOT_FOUND: StaleSessionAnswer,
    Status.FAILED_PRECONDITION: CacheStaleAnswer,
    Status.INVALID_ARGUMENT: InvalidInput,
}

_LIVENESS: dict[Status, type[EmClientError]] = {
    Status.FAILED_PRECONDITION: MarkedDead,
    Status.INVALID_ARGUMENT: IllegalId,
    # Spider-py's: upstream's storage never answers it. A missing or wrong cluster credential
    # (docs/security.md) is not a transport failure: registration gives up after its server
    # errors and the EM stops, instead of retrying forever.
    Status.UNAUTHENTICATED: ServerError,
}


def storage_error(error: RpcError, operation: str) -> EmClientError:
    """``TaskInstanceManagementService``: stale session, stale cache, bad input, else server.

    FAILED_PRECONDITION is upstream's ``CacheStale`` (drop the assignment), except when storage
    says it declared this EM dead: the task itself is still ready, so dropping and acknowledging
    the assignment would lose it (the scheduler would never offer it again). That answer is
    ``MarkedDead``, which leaves the assignment unacknowledged for ``Shutdown`` to hand back.
    """
    if error.is_transient:
        return TransportError(error.message, operation=operation)
    if error.status is Status.FAILED_PRECONDITION and EM_DECLARED_DEAD in error.message:
        return MarkedDead(error.message, operation=operation)
    return _STORAGE.get(error.status, ServerError)(error.message, operation=operation)


def liveness_error(error: RpcError, operation: str) -> EmClientError:
    """``ExecutionManagerLivenessService``: marked dead, illegal id, else transport.

    Upstream treats every other code, ``INTERNAL`` included, as a transport failure, so a
    storage that fails internally delays a heartbeat instead of stopping the EM.
    """
    return _LIVENESS.get(error.status, TransportError)(error.message, operation=operation)


def scheduler_error(error: RpcError, operation: str) -> EmClientError:
    """``SchedulerService``: transport for transient failures, server for everything else."""
    if error.is_transient:
        return TransportError(error.message, operation=operation)
    return ServerError(error.message, operation=operation)


def extension_missing(error: RpcError) -> bool:
    """Whether ``error`` says the peer does not serve the method (UNIMPLEMENTED; spider.rpc's
    server answers an unknown route so). Any other status, UNKNOWN included (a proxy's or a
    failing handler's), leaves the EM on the extension: it is that call's error, not the peer's
    lack of the service."""
    return error.status is Status.UNIMPLEMENTED
