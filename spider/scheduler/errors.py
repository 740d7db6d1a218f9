"""The scheduler's errors: one base class, flat subclasses."""

from __future__ import annotations

from spider.core.errors import FatalError, SpiderError


class SchedulerError(SpiderError):
    """Base class of the scheduler's errors."""


class InvalidSessionId(SchedulerError, FatalError):
    """A storage session that does not move forward: storage's database was replaced under us.

    Fatal: nothing the scheduler holds can be reconciled with a storage that forgot its
    sessions; a process supervisor restarts the scheduler, which then starts from session 0.
    """


class StorageRejected(SchedulerError, FatalError):
    """Storage refused a request in a way no retry can fix (wrong endpoint, bad advertised
    address...); fatal."""


class ExecutionManagerNotFound(SchedulerError):
    """``Shutdown`` from an execution manager the registry does not know (or already removed)."""
