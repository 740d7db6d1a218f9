"""``retry_transient``: repeat a call while it fails with a transient ``RpcError``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import trio

from spider.core.backoff import Backoff
from spider.rpc.errors import RpcError

LOGGER = logging.getLogger("spider.rpc")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


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
    delays = backoff.delays()
    attempt = 1
    while True:
        try:
            return await fn(*args)
        except RpcError as error:
            if not error.is_transient:
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            LOGGER.warning(
                "%s failed on attempt %d (%s); retrying in %.3f s",
                label,
                attempt,
                error,
                delay,
                extra={
                    "rpc_operation": label,
                    "rpc_attempt": attempt,
                    "rpc_status": error.status.name,
                    "retry_delay_s": delay,
                },
            )
        await trio.sleep(delay)
        attempt += 1
