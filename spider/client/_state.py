"""A job's state as the client reports it, and its mapping from the wire enum."""

from __future__ import annotations

import enum

from spider.client.errors import StorageServerError
from spider.proto import storage as storage_pb


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

    @classmethod
    def from_proto(cls, state: storage_pb.JobState) -> JobState:
        """The state a ``JobStateResponse`` carries; UNSPECIFIED is a server bug."""
        try:
            return _FROM_PROTO[state]
        except KeyError:
            raise StorageServerError(
                f"storage answered an unspecified job state ({state!r}); it is misbehaving"
            ) from None


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

_FROM_PROTO = {
    storage_pb.JobState.READY: JobState.READY,
    storage_pb.JobState.RUNNING: JobState.RUNNING,
    storage_pb.JobState.COMMIT_READY: JobState.COMMIT_READY,
    storage_pb.JobState.CLEANUP_READY: JobState.CLEANUP_READY,
    storage_pb.JobState.SUCCEEDED: JobState.SUCCEEDED,
    storage_pb.JobState.FAILED: JobState.FAILED,
    storage_pb.JobState.CANCELLED: JobState.CANCELLED,
}
