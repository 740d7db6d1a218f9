"""``EmStop``: the execution manager's stop lifecycle, read top to bottom.

A stop moves one state, ``running -> stopping(at) -> forced(at)``, and never back:

1. The first request (SIGTERM, SIGINT, a test) is a graceful stop: polling and registration stop
   at once, a running task gets until its hard timeout or ``at + grace``, whichever is first,
   reports drain, and every consumed assignment is acknowledged in ``Shutdown``.
2. A second request forces a fast exit: running tasks are killed now, and reports and
   ``Shutdown`` get ``forced_bound`` seconds from then.
3. A fatal error (storage does not know the EM's id, or declared it dead with
   ``on_declared_dead: exit``...) is recorded with ``fail`` and stops the EM the same way; the
   runtime raises it once everything has been wound down. Declared dead with ``rejoin`` (the
   default) is not a stop: the EM registers again (spider/em/life.py).

Signal handlers and fatal errors only move the state. The owners of cancel scopes read it and
race it (docs/architecture.md, "How a service stops"): ``cancelled_on_stop`` ends a wait at the
first request, ``bounded_when_forced`` brings a scope's deadline to the forced bound, and
``follow_task_deadline`` feeds the deadline of running tasks to the pool. Nobody keeps a
registry of scopes it does not own.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, NoReturn, TypeAlias, cast

import attrs
import trio
from trio_util import AsyncValue, move_on_when

from spider.em.errors import ExecutionManagerError

LOGGER: Final = logging.getLogger("spider.em")

Race: TypeAlias = AbstractAsyncContextManager[trio.CancelScope, bool]
"""A cancel scope raced against the stop; like ``trio.CancelScope`` it absorbs its own
cancellation, so check ``scope.cancelled_caught`` after the block."""


class StopPhase(enum.Enum):
    """Where the EM is in its stop lifecycle; it only moves forward."""

    RUNNING = "running"
    STOPPING = "stopping"
    """A graceful stop was requested: no new work; running tasks get the grace."""
    FORCED = "forced"
    """The stop was forced: running tasks are killed; reports and ``Shutdown`` are bounded."""


@attrs.frozen
class StopState:
    """One value of ``EmStop.state``."""

    phase: StopPhase = StopPhase.RUNNING
    at: float = math.inf
    """When (``trio.current_time()``) the phase began; ``inf`` while running."""
    reason: str = ""


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"EmStop.{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.define(eq=False)
class EmStop:
    """The EM's stop state and what it bounds; create one per run inside Trio."""

    grace: float = attrs.field(default=30.0, validator=_non_negative_seconds)
    """Seconds a running task may go on after a graceful stop request."""
    forced_bound: float = attrs.field(default=2.0, validator=_non_negative_seconds)
    """Seconds reports and ``Shutdown`` may still take once the stop is forced."""
    state: AsyncValue[StopState] = attrs.field(factory=lambda: AsyncValue(StopState()), init=False)
    _requested: StopState = attrs.field(factory=StopState, init=False)
    """The state the first request moved to (``stopping``, or ``forced`` if it forced)."""
    _error: ExecutionManagerError | None = attrs.field(default=None, init=False)

    # --- moving it: signal handlers, tests, fatal errors -----------------------------------

    def request(self, reason: str) -> None:
        """Ask for a graceful stop; a second request forces it."""
        if self.requested:
            self.force(f"{reason} again, forcing the exit")
            return
        self._move(StopState(StopPhase.STOPPING, trio.current_time(), reason))
        LOGGER.warning(
            "Stop requested (%s): no new tasks; a running task gets up to %g s.",
            reason,
            self.grace,
            extra={"reason": reason, "shutdown_grace_s": self.grace},
        )

    def force(self, reason: str) -> None:
        """Stop now: kill running tasks, give reports and ``Shutdown`` ``forced_bound`` seconds."""
        if self.forced:
            LOGGER.warning("Already stopping fast; ignoring: %s.", reason, extra={"reason": reason})
            return
        self._move(StopState(StopPhase.FORCED, trio.current_time(), reason))
        LOGGER.warning(
            "Stopping fast (%s): killing running tasks; reports and Shutdown get %g s.",
            reason,
            self.forced_bound,
            extra={"reason": reason, "forced_bound_s": self.forced_bound},
        )

    def fail(self, error: ExecutionManagerError, *, force: bool) -> None:
        """Record ``error`` as the reason the EM stops (the first one wins) and stop."""
        if self._error is None:
            self._error = error
        if force:
            self.force(str(error))
        elif not self.requested:
            self.request(str(error))

    def _move(self, state: StopState) -> None:
        if not self.requested:
            self._requested = state
        self.state.value = state

    # --- reading it --------------------------------------------------------------------------

    @property
    def current(self) -> StopState:
        """The state now."""
        state: StopState = self.state.value
        return state

    @property
    def requested(self) -> bool:
        """True once a stop was requested (gracefully or not)."""
        return self.current.phase is not StopPhase.RUNNING

    @property
    def forced(self) -> bool:
        """True once the stop was forced."""
        return self.current.phase is StopPhase.FORCED

    @property
    def reason(self) -> str | None:
        """Why the first stop was requested."""
        return self._requested.reason if self.requested else None

    @property
    def error(self) -> ExecutionManagerError | None:
        """The fatal error that stopped the EM, if one did."""
        return self._error

    @property
    def task_deadline(self) -> float:
        """When running tasks get killed: first request + grace, or when the stop was forced."""
        state = self.current
        if state.phase is StopPhase.FORCED:
            return min(state.at, self._requested.at + self.grace)
        return state.at + self.grace

    def kill_message(self) -> str:
        """The failure reported for a task the stop killed."""
        if self.forced:
            return (
                "killed at shutdown: the execution manager was stopped at once "
                f"({self.current.reason})"
            )
        return f"killed at shutdown after the {self.grace:g} s grace"

    # --- racing it: owners of scopes ---------------------------------------------------------

    async def wait_requested(self) -> None:
        """Wait for the first stop request."""
        await self.state.wait_value(lambda state: state.phase is not StopPhase.RUNNING)

    async def wait_forced(self) -> StopState:
        """Wait until the stop is forced; the forced state."""
        forced: StopState = await self.state.wait_value(
            lambda state: state.phase is StopPhase.FORCED
        )
        return forced

    def cancelled_on_stop(self) -> Race:
        """A wait that the first request ends, for one-off waits (``move_on_when``).

        Use as ``async with stop.cancelled_on_stop() as scope:``; like ``trio.CancelScope`` it
        absorbs its own cancellation: check ``scope.cancelled_caught`` after the block.
        """
        return cast(Race, move_on_when(self.wait_requested))

    @asynccontextmanager
    async def racing_each_wait(self) -> AsyncIterator[StopRacer]:
        """A racer for a loop's lifetime: each of its waits is a cancel scope, not a task."""
        racer = StopRacer(self)
        async with trio.open_nursery() as race:
            race.start_soon(racer.cancel_when_requested)
            yield racer
            race.cancel_scope.cancel()

    def bounded_when_forced(self, *, deadline: float = math.inf, shield: bool = False) -> Race:
        """A cancel scope ending at ``deadline``, or ``forced_bound`` after the stop is forced."""
        return cast(Race, self._bounded_when_forced(deadline, shield))

    @asynccontextmanager
    async def _bounded_when_forced(
        self, deadline: float, shield: bool
    ) -> AsyncIterator[trio.CancelScope]:
        with trio.CancelScope(deadline=deadline, shield=shield) as scope:

            async def bound() -> None:
                forced = await self.wait_forced()
                scope.deadline = min(scope.deadline, forced.at + self.forced_bound)

            async with trio.open_nursery() as race:
                race.start_soon(bound)
                yield scope
                race.cancel_scope.cancel()

    async def follow_task_deadline(self, set_deadline: Callable[[float], None]) -> NoReturn:
        """Feed ``task_deadline`` to ``set_deadline`` (the pool's) each time it moves."""
        async for _ in self.state.eventual_values():
            if math.isfinite(self.task_deadline):
                set_deadline(self.task_deadline)
        raise AssertionError("eventual_values never ends")


@attrs.define(eq=False)
class StopRacer:
    """The waits of one loop that the first stop request ends (``EmStop.racing_each_wait``).

    One task races the stop for the loop's whole life and cancels the loop's current wait, so
    a wait per iteration costs a cancel scope rather than a task (``move_on_when`` starts one).
    """

    _stop: EmStop
    _current: trio.CancelScope | None = attrs.field(default=None, init=False)

    def cancelled_on_stop(self) -> trio.CancelScope:
        """A cancel scope (for ``with``) that the first request cancels, at once if it came
        already. It replaces the loop's previous one, which has ended: a loop waits for one
        thing at a time."""
        scope = trio.CancelScope()
        if self._stop.requested:
            scope.cancel(reason=f"stop requested: {self._stop.reason}")
        self._current = scope
        return scope

    async def cancel_when_requested(self) -> None:
        """Cancel the loop's current wait at the first request (later ones start cancelled)."""
        await self._stop.wait_requested()
        if self._current is not None:  # cancelling one that has ended does nothing
            self._current.cancel(reason=f"stop requested: {self._stop.reason}")
