"""Supervision of durable background loops (docs/architecture.md, "Long-lived loops").

One policy: ``supervise`` keeps a loop that should run for the life of its nursery running: an
unexpected exception is logged with its traceback and the loop restarts after a capped
exponential backoff; a clean return is logged and restarted the same way; cancellation passes
through untouched. A ``FatalError`` (alone or inside an exception group) is the exception: the
loop is not restarted, the error propagates and ends the service with its message.
``run_suppressing_errors`` is for one-shot work that must neither restart nor take its siblings
down: it logs a failure and swallows it.

Synopsis::

    async with trio.open_nursery() as nursery:
        port = await nursery.start(supervise, "storage gRPC server", serve, services, host, 0)
        nursery.start_soon(supervise, "job cache GC", run_job_cache_gc, cache)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import attrs
import trio

from spider.core.backoff import Backoff
from spider.core.errors import FatalError, SpiderError
from spider.core.exception_groups import leaves
from spider.core.retry import FailedAttempt, retry

LOGGER = logging.getLogger("spider.supervision")

SUPERVISOR_BACKOFF = Backoff(initial=1.0, multiplier=2.0, cap=60.0)
"""Restart delays of a supervised loop: 1 s doubling to 60 s, no jitter (restarts are local)."""

HEALTHY_AFTER = 300.0
"""Seconds a run must last before its failure counts as new trouble and the backoff resets."""


class LoopReturnedError(SpiderError):
    """A supervised loop returned where it may not: before reporting readiness, or too often."""


@attrs.define(eq=False)
class _FirstStartForwarder:
    """A ``task_status`` for each run that reports only the first run's ``started()`` outward.

    A restarted loop calls ``started()`` again; the outer ``nursery.start`` returned long ago,
    so later calls only mark the run as live.
    """

    _outer: trio.TaskStatus[Any]
    forwarded: bool = False

    def started(self, value: Any = None) -> None:
        if not self.forwarded:
            self.forwarded = True
            self._outer.started(value)


async def supervise(
    name: str,
    fn: Callable[..., Awaitable[object]],
    *args: object,
    backoff: Backoff = SUPERVISOR_BACKOFF,
    healthy_after: float = HEALTHY_AFTER,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run ``await fn(*args, task_status=...)`` for as long as the enclosing scope lives.

    ``fn`` is a durable loop: it takes ``task_status`` as trio's long-lived tasks do and should
    never return. Each run gets its own ``task_status``; the first ``started(value)`` of the
    first run that reaches it is forwarded, so ``await nursery.start(supervise, ...)`` returns
    that value. Started with ``nursery.start``, a failure before that first ``started()``
    propagates to the starter (a loop that cannot come up at all is a configuration error);
    started with ``start_soon``, every failure is supervised.

    After a run raises an ``Exception`` (exception groups of ``Exception`` included) or returns,
    the failure is logged on ``spider.supervision`` and ``fn`` is restarted after the next delay
    of ``backoff``. A run that lasted at least ``healthy_after`` seconds resets the backoff, so
    the next delay is ``backoff.initial`` again. ``backoff.max_attempts``, if set, bounds the
    number of runs: once they are used up, the last error propagates (``LoopReturnedError`` if
    the last run returned).

    A run that raises a ``FatalError`` (or a group holding one) is not restarted: the error is
    logged once and propagates as raised, to end the service. Otherwise ends only by
    cancellation, which passes through untouched, as do ``KeyboardInterrupt`` and other
    ``BaseException`` s.
    """
    forwarder = _FirstStartForwarder(task_status)
    fail_before_start = task_status is not trio.TASK_STATUS_IGNORED
    last_start = trio.current_time()

    def restartable(error: Exception) -> bool:
        if _fatal(error) is not None:
            return False
        # Started with ``nursery.start``, a loop that never came up is the starter's error.
        return not (fail_before_start and not forwarder.forwarded)

    async def run() -> NoReturn:
        nonlocal last_start
        last_start = trio.current_time()
        await fn(*args, task_status=forwarder)
        if fail_before_start and not forwarder.forwarded:
            raise LoopReturnedError(
                f"supervised loop {name!r} returned before calling task_status.started(); "
                "a durable loop must report readiness, then run until cancelled"
            )
        raise _Returned

    def log(failed: FailedAttempt) -> None:
        extra = {"loop_name": name, "ran_for_s": failed.ran_for, "restart_delay_s": failed.delay}
        if isinstance(failed.error, _Returned):
            LOGGER.error(
                "supervised loop %r returned after %.3f s but should run until cancelled; "
                "restarting in %.3f s",
                name,
                failed.ran_for,
                failed.delay,
                extra=extra,
            )
        else:
            LOGGER.error(
                "supervised loop %r failed after %.3f s; restarting in %.3f s: %r",
                name,
                failed.ran_for,
                failed.delay,
                failed.error,
                exc_info=failed.error,
                extra=extra,
            )

    try:
        await retry(
            run, delays=backoff.delays, rule=restartable, on_retry=log, fresh_after=healthy_after
        )
    except _Returned:
        raise LoopReturnedError(
            f"supervised loop {name!r} keeps returning and has used up its "
            f"{backoff.max_attempts} attempts; a durable loop must run until cancelled"
        ) from None
    except Exception as exc:
        fatal = _fatal(exc)
        if fatal is not None:
            LOGGER.error(
                "supervised loop %r stopped on a fatal error, not restarting it: %s",
                name,
                fatal,
                extra={"loop_name": name, "ran_for_s": trio.current_time() - last_start},
            )
        elif restartable(exc):  # so it failed for good: its attempts are used up
            LOGGER.error(
                "supervised loop %r failed and has used up its %s attempts; giving up",
                name,
                backoff.max_attempts,
                exc_info=True,
                extra={"loop_name": name, "ran_for_s": trio.current_time() - last_start},
            )
        raise


def _fatal(error: BaseException) -> FatalError | None:
    """The first ``FatalError`` in ``error`` (itself, or a leaf of its group)."""
    return next((leaf for leaf in leaves(error) if isinstance(leaf, FatalError)), None)


class _Returned(Exception):
    """A supervised run returned: restarted like a failure, logged as a return."""


async def run_suppressing_errors(
    name: str, fn: Callable[..., Awaitable[object]], *args: object
) -> None:
    """Run ``await fn(*args)`` once; log an ``Exception`` and swallow it (never propagate it).

    For work whose failure must not cancel its siblings and must not be retried (for example a
    best-effort notification). Cancellation and other ``BaseException`` s pass through.
    """
    try:
        await fn(*args)
    except Exception:
        LOGGER.exception("task %r failed; not restarting it", name, extra={"loop_name": name})
