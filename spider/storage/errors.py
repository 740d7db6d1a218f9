"""The errors of the storage service: one base, flat subclasses, one table of gRPC statuses.

Every error a storage operation raises on purpose is a ``StorageError``; the service layer
answers it with ``grpc_status(error)`` and ``str(error)`` and keeps serving. Messages keep the
prefixes Spider's clients and EMs rely on (``"stale session; current storage session is N"``,
``"cache stale: ..."``), because EMs branch on them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from spider.core.errors import EM_DECLARED_DEAD, SpiderError
from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SessionId
from spider.core.job_state import JobState
from spider.rpc.errors import Status


class StorageError(SpiderError):
    """Base of the errors storage operations raise; each maps to one gRPC status."""


class BadRequest(StorageError):
    """A malformed request: a bad graph, inputs or outputs frame, or an impossible task id."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad request: {detail}")


class JobNotFound(StorageError):
    """No job with that id, neither in the cache nor in the database."""

    def __init__(self, job_id: JobId) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidJobState(StorageError):
    """The job exists but is in the wrong state for the request (e.g. outputs of a running job)."""

    def __init__(
        self,
        job_id: JobId,
        state: JobState,
        operation: str,
        expected: Iterable[JobState],
        *,
        hint: str = "",
    ) -> None:
        wanted = " or ".join(state.value for state in expected)
        message = f"job {job_id} is {state.value}; {operation} needs {wanted}"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.job_id = job_id
        self.state = state


class StaleSession(StorageError):
    """The request carries another storage session: it was made before a storage restart."""

    def __init__(self, current: SessionId) -> None:
        super().__init__(f"stale session; current storage session is {current}")
        self.current = current


class StaleReason(enum.Enum):
    """Why a task-instance request no longer matches the cache (Spider's ``StaleState`` names)."""

    JOB_NOT_IN_CACHE = "JobNotInCache"
    JOB_NOT_STARTED = "JobNotStarted"
    JOB_NO_LONGER_RUNNING = "JobNoLongerRunning"
    JOB_NO_LONGER_COMMIT_READY = "JobNoLongerCommitReady"
    JOB_NO_LONGER_CLEANUP_READY = "JobNoLongerCleanupReady"
    JOB_ALREADY_TERMINATED = "JobAlreadyTerminated"
    TASK_NOT_READY = "TaskNotReady"
    TASK_INSTANCE_LIMIT_EXCEEDED = "TaskInstanceLimitExceeded"
    TASK_ALREADY_TERMINATED = "TaskAlreadyTerminated"
    INVALID_TASK_INSTANCE_ID = "InvalidTaskInstanceId"


class CacheStale(StorageError):
    """The EM's view is out of date (duplicate, timed out, cancelled or finished work): drop it."""

    def __init__(self, reason: StaleReason, detail: str) -> None:
        super().__init__(f"cache stale: {reason.value}: {detail}")
        self.reason = reason


class InvalidResourceGroup(StorageError):
    """The resource group does not exist, or the password does not match."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            f"invalid resource group: {detail}" if detail else "invalid resource group"
        )


class MissingGroupCredential(StorageError):
    """A job call without the resource group's credential, where storage requires one."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"{detail}: this storage requires the resource group's credential with job calls "
            "(spider-resource-group and spider-resource-group-password-bin metadata; "
            "docs/security.md)"
        )


class ForeignJob(StorageError):
    """A job call about a job (or group) other than the caller's resource group's."""

    def __init__(self, what: str, caller_group: ResourceGroupId) -> None:
        super().__init__(
            f"{what} belongs to another resource group than the credential's ({caller_group})"
        )


class ResourceGroupExists(StorageError):
    """A resource group with that external id already exists."""

    def __init__(self, external_id: str) -> None:
        super().__init__(
            f"resource group {external_id!r} already exists; choose another external id"
        )


class IllegalEmId(StorageError):
    """The execution manager id was never registered with storage."""

    def __init__(self, em_id: ExecutionManagerId) -> None:
        super().__init__(
            f"execution manager {em_id} is not registered with storage; "
            "call RegisterExecutionManager first"
        )
        self.em_id = em_id


class EmDead(StorageError):
    """Storage declared the execution manager dead; it must register again under a new id."""

    def __init__(self, em_id: ExecutionManagerId) -> None:
        super().__init__(
            f"execution manager {em_id} {EM_DECLARED_DEAD} (no heartbeat within the cutoff); "
            "its work was rescheduled: register again"
        )
        self.em_id = em_id


class StorageUnavailable(StorageError):
    """The database could not be reached: nothing changed, retry later."""


class StorageInternalError(StorageError):
    """An unexpected failure (a database error storage cannot interpret, or a cache/DB mismatch).

    The request fails and is logged; the cache is unchanged and the service keeps serving.
    """


GRPC_STATUS: Mapping[type[StorageError], Status] = {
    BadRequest: Status.INVALID_ARGUMENT,
    JobNotFound: Status.NOT_FOUND,
    InvalidJobState: Status.FAILED_PRECONDITION,
    StaleSession: Status.NOT_FOUND,
    CacheStale: Status.FAILED_PRECONDITION,
    InvalidResourceGroup: Status.UNAUTHENTICATED,
    MissingGroupCredential: Status.UNAUTHENTICATED,
    ForeignJob: Status.PERMISSION_DENIED,
    ResourceGroupExists: Status.ALREADY_EXISTS,
    IllegalEmId: Status.INVALID_ARGUMENT,
    EmDead: Status.FAILED_PRECONDITION,
    StorageUnavailable: Status.UNAVAILABLE,
    StorageInternalError: Status.INTERNAL,
}
"""The gRPC status each storage error answers with; the service layer's only mapping."""


def grpc_status(error: StorageError) -> Status:
    """The status to answer ``error`` with (``INTERNAL`` for a class missing from the table)."""
    for cls, status in GRPC_STATUS.items():
        if isinstance(error, cls):
            return status
    return Status.INTERNAL
