"""The one mapping from storage domain errors to the gRPC status a handler answers with."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from spider.rpc import Status, error_for_status
from spider.storage.errors import StorageError, grpc_status

LOGGER = logging.getLogger("spider.storage.service")


@contextmanager
def answering_storage_errors(operation: str) -> Iterator[None]:
    """Turn a ``StorageError`` raised inside the block into the ``RpcError`` of its status.

    The message is the domain error's own (EMs branch on its prefixes). An internal error is
    logged with its traceback, since the caller only sees the message; the service keeps serving.
    """
    try:
        yield
    except StorageError as error:
        status = grpc_status(error)
        if status is Status.INTERNAL:
            LOGGER.error(
                "%s failed: %s", operation, error, exc_info=True, extra={"rpc_method": operation}
            )
        raise error_for_status(status, str(error)) from error
