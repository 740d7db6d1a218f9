"""``JobState``: the states of a job, one enum for storage (which stores them) and clients.

The values are Spider's spellings, as its database enum and ``spider status`` write them; the
wire's ``JobState`` proto enum maps to them one to one.
"""

from __future__ import annotations

import enum


class JobState(enum.Enum):
    """A job's state; the values are Spider's spellings (``Ready``, ``CommitReady``...)."""

    READY = "Ready"
    RUNNING = "Running"
    COMMIT_READY = "CommitReady"
    CLEANUP_READY = "CleanupReady"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """Succeeded, Failed or Cancelled: the state will not change again."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
