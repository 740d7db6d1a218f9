"""``retry_transient``: repeat a call while it fails with a transient ``RpcError``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

from spider.core.backoff import Backoff
from spider.core.retry import FailedAttempt, RetryRule, retry, retry_if
from spider.rpc.errors import RpcError

LOGGER = logging.getLogger("spider.rpc")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

TRANSIENT: RetryRule = retry_if(lambda error: isinstance(error, RpcError) and error.is_transient)
"""The retry rule for RPCs: retry what ``RpcError.is_transient`` says a retry may cure."""


async def retry_transient(
    fn: Callable[[*_Ts], Awaitable[_T]],
    *args: *_Ts,
    backoff: Backoff,
    what: str | None = None,
) -> _T:
    """Return ``await fn(*args)``, retrying while it raises a transient ``RpcError``.

    Transient means ``error.is_transient`` (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, connection
    refused or reset). Each retry waits the next delay of ``backoff`` with ``trio.sleep`` and is
    logged at WARNING on ``spider.rpc``; ``what`` names the operation in that log (default: the
    function's name). Any other error, or the last transient one once ``backoff.max_attempts``
    is used up, propagates. Only retry calls that are safe to repeat: a call that timed out may
    have taken effect.
    """
    label = what if what is not None else getattr(fn, "__qualname__", repr(fn))

    def log(failed: FailedAttempt) -> None:
        error = failed.error
        assert isinstance(error, RpcError), "TRANSIENT retries only RpcError"
        LOGGER.warning(
            "%s failed on attempt %d (%s); retrying in %.3f s",
            label,
            failed.attempt,
            error,
            failed.delay,
            extra={
                "rpc_operation": label,
                "rpc_attempt": failed.attempt,
                "rpc_status": error.status.name,
                "retry_delay_s": failed.delay,
            },
        )

    return await retry(lambda: fn(*args), delays=backoff.delays, rule=TRANSIENT, on_retry=log)
