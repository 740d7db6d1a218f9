"""Supervision of durable background loops (docs/architecture.md, "Long-lived loops").

``supervise`` keeps a loop that should run for the life of its nursery running: an unexpected
exception is logged with its traceback and the loop restarts after a capped exponential backoff;
a clean return is logged and restarted the same way; cancellation passes through untouched.
``run_logged`` is the variant for one-shot work that must neither restart nor take its siblings
down: it logs a failure and returns.

Synopsis::

    async with trio.open_nursery() as nursery:
        port = await nursery.start(supervise, "storage gRPC server", serve, services, host, 0)
        nursery.start_soon(supervise, "job cache GC", run_job_cache_gc, cache)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn

import attrs
import trio

from spider.core.backoff import Backoff
from spider.core.errors import SpiderError

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

    Ends only by cancellation, which passes through untouched, as do ``KeyboardInterrupt`` and
    other ``BaseException`` s.
    """
    forwarder = _FirstStartForwarder(task_status)
    fail_before_start = task_status is not trio.TASK_STATUS_IGNORED
    delays = backoff.delays()
    while True:
        began = trio.current_time()
        try:
            await fn(*args, task_status=forwarder)
        except Exception as exc:
            if fail_before_start and not forwarder.forwarded:
                raise
            ran_for = trio.current_time() - began
            delays = _reset_if_healthy(delays, backoff, ran_for, healthy_after)
            delay = next(delays, None)
            if delay is None:
                LOGGER.error(
                    "supervised loop %r failed and has used up its %s attempts; giving up",
                    name,
                    backoff.max_attempts,
                    exc_info=True,
                    extra={"loop_name": name, "ran_for_s": ran_for},
                )
                raise
            LOGGER.error(
                "supervised loop %r failed after %.3f s; restarting in %.3f s: %r",
                name,
                ran_for,
                delay,
                exc,
                exc_info=True,
                extra={"loop_name": name, "ran_for_s": ran_for, "restart_delay_s": delay},
            )
        else:
            if fail_before_start and not forwarder.forwarded:
                raise LoopReturnedError(
                    f"supervised loop {name!r} returned before calling task_status.started(); "
                    "a durable loop must report readiness, then run until cancelled"
                )
            ran_for = trio.current_time() - began
            delays = _reset_if_healthy(delays, backoff, ran_for, healthy_after)
            delay = next(delays, None)
            if delay is None:
                raise LoopReturnedError(
                    f"supervised loop {name!r} keeps returning and has used up its "
                    f"{backoff.max_attempts} attempts; a durable loop must run until cancelled"
                )
            LOGGER.error(
                "supervised loop %r returned after %.3f s but should run until cancelled; "
                "restarting in %.3f s",
                name,
                ran_for,
                delay,
                extra={"loop_name": name, "ran_for_s": ran_for, "restart_delay_s": delay},
            )
        await trio.sleep(delay)


def _reset_if_healthy(
    delays: Iterator[float], backoff: Backoff, ran_for: float, healthy_after: float
) -> Iterator[float]:
    return backoff.delays() if ran_for >= healthy_after else delays


async def run_logged(name: str, fn: Callable[..., Awaitable[object]], *args: object) -> None:
    """Run ``await fn(*args)`` once; log an ``Exception`` instead of propagating it.

    For work whose failure must not cancel its siblings and must not be retried (for example a
    best-effort notification). Cancellation and other ``BaseException`` s pass through.
    """
    try:
        await fn(*args)
    except Exception:
        LOGGER.exception("task %r failed; not restarting it", name, extra={"loop_name": name})
