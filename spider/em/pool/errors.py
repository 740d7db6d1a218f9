"""The errors of ``spider.em.pool``: one base class, flat subclasses.

Nothing a task does raises out of the pool: tasks end as ``TaskOutcome`` values. These errors are
about the pool itself: executors that cannot be started when the pool opens, and misuse.
"""

from __future__ import annotations

from spider.core.errors import SpiderError


class PoolError(SpiderError):
    """Base class of every error of the execution manager's process pool."""


class ExecutorSpawnError(PoolError):
    """A task executor could not be started (bad command, handshake failure, slow start...).

    Raised out of ``open_process_pool`` when the initial executors cannot start; later
    respawns are retried with backoff instead.
    """


class SlotBusyError(PoolError):
    """``ExecutorSlot.run`` was called while the slot was already running a task."""


class PoolClosedError(PoolError):
    """The pool was used after it was closed (outside its ``async with`` block)."""
