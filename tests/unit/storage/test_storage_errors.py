"""Every storage error has its gRPC status, and its message says what happened."""

from __future__ import annotations

import pytest

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SessionId
from spider.core.job_state import JobState
from spider.rpc.errors import Status
from spider.storage import (
    GRPC_STATUS,
    BadRequest,
    CacheStale,
    EmDead,
    IllegalEmId,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    ResourceGroupExists,
    StaleReason,
    StaleSession,
    StorageError,
    StorageInternalError,
    StorageUnavailable,
    grpc_status,
)
from spider.storage import errors as storage_errors

EXAMPLES: list[tuple[StorageError, Status, str]] = [
    (BadRequest("x"), Status.INVALID_ARGUMENT, "bad request: x"),
    (JobNotFound(JobId(5)), Status.NOT_FOUND, "job 5 not found"),
    (
        InvalidJobState(JobId(5), JobState.RUNNING, "GetJobOutputs", [JobState.SUCCEEDED]),
        Status.FAILED_PRECONDITION,
        "job 5 is Running; GetJobOutputs needs Succeeded",
    ),
    (StaleSession(SessionId(3)), Status.NOT_FOUND, "stale session; current storage session is 3"),
    (
        CacheStale(StaleReason.TASK_ALREADY_TERMINATED, "task Index(0) of job 5 is Succeeded"),
        Status.FAILED_PRECONDITION,
        "cache stale: TaskAlreadyTerminated: task Index(0) of job 5 is Succeeded",
    ),
    (InvalidResourceGroup(), Status.UNAUTHENTICATED, "invalid resource group"),
    (
        storage_errors.MissingGroupCredential("no credential"),
        Status.UNAUTHENTICATED,
        "no credential: this storage requires the resource group's credential",
    ),
    (
        storage_errors.ForeignJob("job 5", ResourceGroupId(2)),
        Status.PERMISSION_DENIED,
        "job 5 belongs to another resource group than the credential's (2)",
    ),
    (ResourceGroupExists("a"), Status.ALREADY_EXISTS, "resource group 'a' already exists"),
    (IllegalEmId(ExecutionManagerId(2)), Status.INVALID_ARGUMENT, "execution manager 2 is not"),
    (EmDead(ExecutionManagerId(2)), Status.FAILED_PRECONDITION, "execution manager 2 was declared"),
    (StorageUnavailable("db down"), Status.UNAVAILABLE, "db down"),
    (StorageInternalError("oops"), Status.INTERNAL, "oops"),
]


@pytest.mark.parametrize(("error", "status", "message"), EXAMPLES, ids=lambda v: type(v).__name__)
def test_each_error_maps_to_its_status(error: StorageError, status: Status, message: str) -> None:
    assert grpc_status(error) is status
    assert str(error).startswith(message)


def test_the_table_covers_every_storage_error() -> None:
    defined = {
        value
        for value in vars(storage_errors).values()
        if isinstance(value, type) and issubclass(value, StorageError) and value is not StorageError
    }
    assert defined == set(GRPC_STATUS)
    assert {type(error) for error, _, _ in EXAMPLES} == defined


def test_an_unmapped_error_is_internal() -> None:
    class Unmapped(StorageError):
        pass

    assert grpc_status(Unmapped("x")) is Status.INTERNAL
