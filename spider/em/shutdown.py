"""``ShutdownTrigger``: how the execution manager is asked to stop, and what stopping bounds.

The first request (SIGTERM, SIGINT, a test) is a graceful stop: polling and registration stop
at once, a running task gets until its hard timeout or the grace budget, whichever is first,
reports drain, and every consumed assignment is acknowledged in ``Shutdown``. A second request
forces a fast exit: running tasks are killed now, and reports and ``Shutdown`` get a short bound.
A fatal error (storage declared the EM dead...) is recorded with ``fail`` and stops the EM the
same way, and the runtime raises it once everything has been wound down.

The trigger pushes its deadlines into what the runtime binds to it: cancel scopes of polls
(``cancelled_on_stop``), the pool (``governing_tasks``) and the scopes of reports and of the
``Shutdown`` RPC (``bounded_when_forced``). It takes effect at once and needs no task of its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final

import attrs
import trio

from spider.em.errors import ExecutionManagerError

LOGGER: Final = logging.getLogger("spider.em")


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"ShutdownTrigger.{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.define(eq=False)
class ShutdownTrigger:
    """Requests to stop, and the deadlines they impose; create one per run inside Trio."""

    grace: float = attrs.field(default=30.0, validator=_non_negative_seconds)
    """Seconds a running task may go on after a graceful stop request."""
    forced_bound: float = attrs.field(default=2.0, validator=_non_negative_seconds)
    """Seconds reports and ``Shutdown`` may still take once the stop is forced."""
    _requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _forced: trio.Event = attrs.field(factory=trio.Event, init=False)
    _reason: str | None = attrs.field(default=None, init=False)
    _force_reason: str | None = attrs.field(default=None, init=False)
    _error: ExecutionManagerError | None = attrs.field(default=None, init=False)
    _task_deadline: float = attrs.field(default=math.inf, init=False)
    _forced_deadline: float = attrs.field(default=math.inf, init=False)
    _stop_scopes: set[trio.CancelScope] = attrs.field(factory=set, init=False)
    _bounded_scopes: set[trio.CancelScope] = attrs.field(factory=set, init=False)
    _task_deadline_sinks: list[Callable[[float], None]] = attrs.field(factory=list, init=False)

    @property
    def requested(self) -> bool:
        """True once a stop was requested (gracefully or not)."""
        return self._requested.is_set()

    @property
    def forced(self) -> bool:
        """True once the stop was forced."""
        return self._forced.is_set()

    @property
    def reason(self) -> str | None:
        """Why the first stop was requested."""
        return self._reason

    @property
    def error(self) -> ExecutionManagerError | None:
        """The fatal error that stopped the EM, if one did."""
        return self._error

    async def wait_requested(self) -> None:
        """Wait for the first stop request."""
        await self._requested.wait()

    def request(self, reason: str) -> None:
        """Ask for a graceful stop; a second request forces it."""
        if self.requested:
            self.force(f"{reason} again, forcing the exit")
            return
        self._reason = reason
        self._requested.set()
        LOGGER.warning(
            "Stop requested (%s): no new tasks; a running task gets up to %g s.",
            reason,
            self.grace,
            extra={"reason": reason, "shutdown_grace_s": self.grace},
        )
        for scope in self._stop_scopes:
            scope.cancel(reason=f"stop requested: {reason}")
        self._move_task_deadline(trio.current_time() + self.grace)

    def force(self, reason: str) -> None:
        """Stop now: kill running tasks, give reports and ``Shutdown`` ``forced_bound`` seconds."""
        if self.forced:
            LOGGER.warning("Already stopping fast; ignoring: %s.", reason, extra={"reason": reason})
            return
        if not self.requested:
            self._reason = reason
            self._requested.set()
            for scope in self._stop_scopes:
                scope.cancel(reason=f"stop forced: {reason}")
        self._force_reason = reason
        self._forced.set()
        now = trio.current_time()
        LOGGER.warning(
            "Stopping fast (%s): killing running tasks; reports and Shutdown get %g s.",
            reason,
            self.forced_bound,
            extra={"reason": reason, "forced_bound_s": self.forced_bound},
        )
        self._forced_deadline = now + self.forced_bound
        for scope in self._bounded_scopes:
            scope.deadline = min(scope.deadline, self._forced_deadline)
        self._move_task_deadline(now)

    def fail(self, error: ExecutionManagerError, *, force: bool) -> None:
        """Record ``error`` as the reason the EM stops (the first one wins) and stop."""
        if self._error is None:
            self._error = error
        if force:
            self.force(str(error))
        elif not self.requested:
            self.request(str(error))

    def kill_message(self) -> str:
        """The failure reported for a task the stop killed."""
        if self._force_reason is not None:
            return f"killed at shutdown: the execution manager was stopped at once ({self._force_reason})"
        return f"killed at shutdown after the {self.grace:g} s grace"

    def cancelled_on_stop(self) -> StopScope:
        """A cancel scope for work that must not go on once a stop is requested (polls).

        Like ``trio.CancelScope`` it absorbs its own cancellation, so the code after the
        ``with`` block runs: check ``scope.cancelled_caught`` there.
        """
        return StopScope(self)

    @contextmanager
    def bounded_when_forced(self, scope: trio.CancelScope) -> Iterator[None]:
        """Bring ``scope``'s deadline to the forced bound when (or if already) forced."""
        scope.deadline = min(scope.deadline, self._forced_deadline)
        self._bounded_scopes.add(scope)
        try:
            yield
        finally:
            self._bounded_scopes.discard(scope)

    @contextmanager
    def governing_tasks(self, set_deadline: Callable[[float], None]) -> Iterator[None]:
        """Feed the task deadline (stop + grace, or now when forced) to ``set_deadline``."""
        if math.isfinite(self._task_deadline):
            set_deadline(self._task_deadline)
        self._task_deadline_sinks.append(set_deadline)
        try:
            yield
        finally:
            self._task_deadline_sinks.remove(set_deadline)

    def _watch(self, scope: trio.CancelScope) -> None:
        if self.requested:
            scope.cancel(reason=f"stop requested: {self._reason}")
        self._stop_scopes.add(scope)

    def _unwatch(self, scope: trio.CancelScope) -> None:
        self._stop_scopes.discard(scope)

    def _move_task_deadline(self, deadline: float) -> None:
        self._task_deadline = min(self._task_deadline, deadline)
        for sink in self._task_deadline_sinks:
            sink(self._task_deadline)


@attrs.define(eq=False)
class StopScope:
    """``ShutdownTrigger.cancelled_on_stop()``: a ``trio.CancelScope`` that a stop cancels."""

    _trigger: ShutdownTrigger
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)

    def __enter__(self) -> trio.CancelScope:
        self._trigger._watch(self._scope)
        return self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self._trigger._unwatch(self._scope)
        return self._scope.__exit__(exc_type, exc, traceback)
