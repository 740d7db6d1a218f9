"""Retrying a client call while its failure may be temporary, until its answer stops mattering."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import attrs

from spider.core.backoff import Backoff
from spider.core.retry import FailedAttempt, any_of, at_most, retry, retry_on
from spider.em.errors import ServerError, TransportError

LOGGER: Final = logging.getLogger("spider.em")

_T = TypeVar("_T")

_TRANSPORT: Final = retry_on(TransportError)
_SERVER: Final = retry_on(ServerError)

DEFAULT_RETRY_BACKOFF: Final = Backoff(initial=0.1, cap=5.0, multiplier=2.0, jitter=0.1)
"""100 ms doubling to 5 s, plus up to 100 ms of jitter, for as long as it takes."""


def _unlimited(_instance: object, _attribute: attrs.Attribute[Backoff], value: Backoff) -> None:
    if value.max_attempts is not None:
        raise ValueError(
            "RetryPolicy.backoff must not set max_attempts: transport failures are retried until "
            "the answer no longer matters (a new session, a shutdown)"
        )


@attrs.frozen
class RetryPolicy:
    """How the EM retries calls to storage and the scheduler."""

    backoff: Backoff = attrs.field(default=DEFAULT_RETRY_BACKOFF, validator=_unlimited)
    """Delays between attempts; the sequence restarts for every new operation."""
    server_error_attempts: int | None = attrs.field(default=5)
    """Attempts (the first included) an operation gets while the peer fails internally
    (``ServerError``), ``None`` for no limit; transport failures are retried without limit."""

    @server_error_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"RetryPolicy.{attribute.name} must be >= 1 or None, got {value!r}")


class Superseded(Exception):
    """The operation's result stopped mattering before it succeeded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _never() -> str | None:
    return None


async def call_with_retry(
    call: Callable[[], Awaitable[_T]],
    *,
    policy: RetryPolicy,
    what: str,
    fields: Mapping[str, Any],
    superseded: Callable[[], str | None] = _never,
) -> _T:
    """Return ``await call()``, retrying ``TransportError`` (always) and ``ServerError`` (up to
    ``policy.server_error_attempts``) with ``policy.backoff``.

    Before each attempt ``superseded()`` is asked whether the result still matters; a reason
    raises ``Superseded``. Other ``EmClientError`` s, and the last ``ServerError``, propagate.
    Each retry is logged at WARNING with ``what`` and ``fields``.
    """

    async def attempt() -> _T:
        reason = superseded()
        if reason is not None:
            raise Superseded(reason)
        return await call()

    def log(failed: FailedAttempt) -> None:
        LOGGER.warning(
            "%s failed on attempt %d (%s); retrying in %.3f s.",
            what,
            failed.attempt,
            failed.error,
            failed.delay,
            extra={
                **fields,
                "attempt": failed.attempt,
                "error": str(failed.error),
                "retry_delay_s": failed.delay,
            },
        )

    return await retry(
        attempt,
        delays=policy.backoff.delays,
        rule=any_of(_TRANSPORT, at_most(policy.server_error_attempts, _SERVER)),
        on_retry=log,
    )
