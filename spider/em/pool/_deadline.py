"""The pool's shutdown deadline, applied to every task running (or starting) under it."""

from __future__ import annotations

import math

import attrs
import trio


@attrs.define(eq=False)
class ShutdownDeadline:
    """A deadline shared by the cancel scopes of all running tasks; moving it moves theirs.

    Each scope may also have its own earlier deadline (its *cap*: a task's hard timeout), so a
    task needs a single cancel scope for both, and ``ended_by_shutdown`` tells which fired.
    """

    deadline: float = math.inf
    _caps: dict[trio.CancelScope, float] = attrs.field(factory=dict, init=False)

    def move_to(self, deadline: float) -> None:
        """Set the deadline (in ``trio.current_time()`` terms) of running and future tasks."""
        self.deadline = deadline
        for scope, cap in self._caps.items():
            scope.deadline = min(cap, deadline)

    def passed(self) -> bool:
        """Whether the deadline is already over."""
        return trio.current_time() >= self.deadline

    def open_scope(self, cap: float = math.inf) -> trio.CancelScope:
        """A cancel scope ending at ``cap`` or at the deadline, whichever comes first, until
        ``forget`` is called with it."""
        scope = trio.CancelScope(deadline=min(cap, self.deadline))
        self._caps[scope] = cap
        return scope

    def forget(self, scope: trio.CancelScope) -> None:
        """Stop moving ``scope`` (its task is done)."""
        self._caps.pop(scope, None)

    @staticmethod
    def ended_by_shutdown(scope: trio.CancelScope, cap: float) -> bool:
        """Whether ``scope`` (opened with ``cap``) fired because of the shutdown deadline."""
        return scope.deadline < cap
