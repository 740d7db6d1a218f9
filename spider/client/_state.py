"""A job's state as the wire carries it, mapped to ``spider.core.job_state.JobState``."""

from __future__ import annotations

from spider.client.errors import StorageServerError
from spider.core.job_state import JobState
from spider.proto import storage as storage_pb


def job_state_from_proto(state: storage_pb.JobState) -> JobState:
    """The state a ``JobStateResponse`` carries; UNSPECIFIED is a server bug."""
    try:
        return _FROM_PROTO[state]
    except KeyError:
        raise StorageServerError(
            f"storage answered an unspecified job state ({state!r}); it is misbehaving"
        ) from None


_FROM_PROTO = {
    storage_pb.JobState.READY: JobState.READY,
    storage_pb.JobState.RUNNING: JobState.RUNNING,
    storage_pb.JobState.COMMIT_READY: JobState.COMMIT_READY,
    storage_pb.JobState.CLEANUP_READY: JobState.CLEANUP_READY,
    storage_pb.JobState.SUCCEEDED: JobState.SUCCEEDED,
    storage_pb.JobState.FAILED: JobState.FAILED,
    storage_pb.JobState.CANCELLED: JobState.CANCELLED,
}


def job_state_to_proto(state: JobState) -> storage_pb.JobState:
    """The wire value of ``state`` (a listing's filter)."""
    return _TO_PROTO[state]


_TO_PROTO = {state: value for value, state in _FROM_PROTO.items()}
