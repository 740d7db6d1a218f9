"""``TaskState``: where one task of a job stands, as storage tracks it and listings show it.

A regular task starts ``Pending`` (waiting for parents) or ``Ready`` (an input task); the commit
and cleanup tasks start ``Ready``. Registering an instance makes it ``Running``; it ends
``Succeeded``, ``Failed`` or ``Cancelled``.
"""

from __future__ import annotations

import enum


class TaskState(enum.Enum):
    """A task's state."""

    PENDING = "Pending"
    READY = "Ready"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
