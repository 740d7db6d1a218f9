"""``retry``: call again after a backoff delay while a rule says the failure may pass.

Every retry loop in Spider-py is this one (docs/rpc.md, "Retries: one helper, named rules"); what
differs from one caller to the next is data:

- ``rule``: which failures are retried, and when to give up on them (``retry_on``,
  ``retry_if``, ``at_most``, ``any_of``). A failure the rule refuses propagates at once.
- ``delays``: where the waits come from, called for every operation (``Backoff.delays``,
  ``then_cap``, or an iterator several operations share). When it runs out, the last failure
  propagates.
- ``fresh_after``: an attempt that ran at least this long starts the delays over, so a failure
  after a long healthy run is not punished for old trouble (supervision's rule).
- ``on_retry``: what to log before each wait.

Cancellation and other ``BaseException`` s pass through untouched. The wait is ``trio.sleep``,
so tests under Trio's ``autojump_clock`` see exact times.

Synopsis::

    registration = await retry(
        lambda: storage.register(endpoint),
        delays=reconnect.delays,
        rule=retry_on(StorageUnavailable),
        on_retry=lambda failed: LOGGER.warning("%s; retrying in %.3f s", failed.error, failed.delay),
    )
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

import attrs
import trio

from spider.core.backoff import Backoff

_T = TypeVar("_T")

RetryRule = Callable[[Exception], bool]
"""Whether a failed attempt may be retried. A rule may count (``at_most``): build such a rule
for each operation, not once per process."""


@attrs.frozen
class FailedAttempt:
    """An attempt that failed and will be retried: what ``on_retry`` is told."""

    error: Exception
    """What the attempt raised."""
    attempt: int
    """Which attempt failed, the first being 1."""
    delay: float
    """Seconds until the next attempt."""
    ran_for: float
    """Seconds the failed attempt took."""


def _quiet(_failed: FailedAttempt) -> None:
    return None


async def retry(
    attempt: Callable[[], Awaitable[_T]],
    *,
    delays: Callable[[], Iterable[float]],
    rule: RetryRule,
    on_retry: Callable[[FailedAttempt], None] = _quiet,
    fresh_after: float = math.inf,
) -> _T:
    """Return ``await attempt()``, calling it again after the next delay while it raises an
    ``Exception`` that ``rule`` accepts.

    ``delays()`` is called at the first failure (and again after an attempt that ran at least
    ``fresh_after`` seconds); once its delays are used up, or ``rule`` refuses a failure, that
    failure propagates. ``on_retry`` is called, inside the ``except`` clause, before each wait.
    """
    waits: Iterator[float] | None = None
    number = 1
    while True:
        began = trio.current_time()
        try:
            return await attempt()
        except Exception as error:
            if not rule(error):
                raise
            ran_for = trio.current_time() - began
            if waits is None or ran_for >= fresh_after:
                waits = iter(delays())
            delay = next(waits, None)
            if delay is None:
                raise
            on_retry(FailedAttempt(error, number, delay, ran_for))
        await trio.sleep(delay)
        number += 1


def retry_on(*kinds: type[Exception]) -> RetryRule:
    """Retry failures of these types, without limit."""

    def rule(error: Exception) -> bool:
        return isinstance(error, kinds)

    return rule


def retry_if(predicate: Callable[[Exception], bool]) -> RetryRule:
    """Retry the failures ``predicate`` accepts, without limit (a name for a plain rule)."""
    return predicate


def any_of(*rules: RetryRule) -> RetryRule:
    """Retry a failure if any of ``rules`` accepts it (each is asked in turn until one does)."""

    def rule(error: Exception) -> bool:
        return any(accepts(error) for accepts in rules)

    return rule


def at_most(attempts: int | None, rule: RetryRule) -> RetryRule:
    """``rule``, giving up on the ``attempts``-th failure it accepts (``None``: never).

    ``attempts`` counts the attempts these failures get, the first included: with 3, two such
    failures are retried and the third propagates. The count lives in the returned rule, so
    build one per operation.
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"at_most needs attempts >= 1 or None, got {attempts!r}")
    if attempts is None:
        return rule
    failures = 0

    def counted(error: Exception) -> bool:
        nonlocal failures
        if not rule(error):
            return False
        failures += 1
        return failures < attempts

    return counted


def then_cap(backoff: Backoff) -> Iterator[float]:
    """``backoff``'s delays, then its cap forever: for work that must not give up even when
    the policy limits its attempts."""
    return itertools.chain(backoff.delays(), itertools.repeat(backoff.cap))
