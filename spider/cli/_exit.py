"""The ``spider`` command's exit statuses (docs/cli.md)."""

from __future__ import annotations

import enum

from spider.client import (
    ClientError,
    JobDefinitionError,
    JobNotFoundError,
    JobStateError,
    StorageUnavailableError,
)


class CliExit(enum.IntEnum):
    """What the exit status of the ``spider`` command means (docs/cli.md)."""

    OK = 0
    """Done; for ``watch`` and ``submit --wait``, the job succeeded."""
    JOB_UNSUCCESSFUL = 1
    """The job that was waited for ended Failed or Cancelled."""
    USAGE = 2
    """Bad command line or bad job description."""
    UNREACHABLE = 3
    """Storage could not be reached."""
    NOT_FOUND = 4
    """No such job."""
    WRONG_STATE = 5
    """The job's state does not allow the request (outputs of a running job...)."""
    REFUSED = 6
    """Storage refused or failed the request otherwise (resource group, server error)."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C."""


def status_for(error: ClientError) -> CliExit:
    """The exit status an error ends the command with."""
    if isinstance(error, JobDefinitionError):
        return CliExit.USAGE
    if isinstance(error, StorageUnavailableError):
        return CliExit.UNREACHABLE
    if isinstance(error, JobNotFoundError):
        return CliExit.NOT_FOUND
    if isinstance(error, JobStateError):
        return CliExit.WRONG_STATE
    return CliExit.REFUSED
