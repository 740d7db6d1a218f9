"""The client's errors: one base, flat subclasses, each saying what happened and what to do."""

from __future__ import annotations

from spider.core.errors import SpiderError


class ClientError(SpiderError):
    """Base of every error the Spider client raises."""


class JobDefinitionError(ClientError, ValueError):
    """A job cannot be built: an unwired or mistyped input, a bad task, a bad policy."""


class JobNotFoundError(ClientError):
    """Storage has no job with this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found; check the id (storage answered NOT_FOUND)")
        self.job_id = job_id


class JobStateError(ClientError):
    """The request does not fit the job's state (outputs of a running job, starting it twice)."""


class JobFailedError(ClientError):
    """A job that ``run`` waited for ended Failed; ``message`` is the failing task's error."""

    def __init__(self, job_id: int, message: str) -> None:
        super().__init__(f"job {job_id} failed: {message}")
        self.job_id = job_id
        self.message = message


class JobCancelledError(ClientError):
    """A job that ``run`` waited for ended Cancelled."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class RequestRejectedError(ClientError):
    """Storage refused the request as malformed (INVALID_ARGUMENT)."""


class ResourceGroupError(ClientError):
    """The resource group does not exist, its password is wrong, or its name is taken."""


class StorageUnavailableError(ClientError):
    """Storage could not be reached, even after retrying."""


class SubmissionUnknownError(ClientError):
    """A registration failed in a way that leaves unknown whether storage created it.

    Raised instead of retrying, because a blind retry could create a duplicate job or group.
    """


class StorageServerError(ClientError):
    """Storage answered with an error the client has no better name for (INTERNAL, ...)."""


class OutputDecodeError(ClientError, ValueError):
    """A job's outputs do not decode as the declared types."""


class NotAvailableError(ClientError):
    """Storage does not serve what was asked: a Spider-py extension (the job listing, ...)
    that an upstream storage does not implement."""
