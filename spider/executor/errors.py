"""The errors of ``spider.executor``: one base class, flat subclasses."""

from __future__ import annotations

from spider.core.errors import SpiderError
from spider.executor.exit_status import ExecutorExitStatus


class ExecutorError(SpiderError):
    """Base class of every error about a task executor subprocess or its protocol."""


class ExecutorProtocolError(ExecutorError):
    """Bytes on the executor pipes that are not a valid frame or message of the protocol."""


class FrameTooLargeError(ExecutorProtocolError):
    """A frame whose body is longer than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"a frame of {size} bytes exceeds the executor frame limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit


class ExecutorStartError(ExecutorError):
    """The executor could not be spawned, or died or misbehaved before it was ready."""

    def __init__(
        self, message: str, *, exit_status: ExecutorExitStatus | None = None, stderr: str = ""
    ) -> None:
        details = f"; its stderr ends with:\n{stderr}" if stderr else ""
        super().__init__(message + details)
        self.exit_status = exit_status
        self.stderr = stderr


class ExecutorExited(ExecutorError):
    """The executor closed its reply pipe while a request was outstanding: it crashed."""

    def __init__(self, exit_status: ExecutorExitStatus) -> None:
        super().__init__(
            f"executor crashed: {exit_status.describe()} (its stderr says why; "
            "start a new executor to continue)"
        )
        self.exit_status = exit_status

    @property
    def returncode(self) -> int:
        """The raw return code: negative for a death by signal, as in ``subprocess``."""
        return self.exit_status.returncode

    @property
    def signal_name(self) -> str | None:
        """The name of the signal that killed the executor (``"SIGABRT"``), if one did."""
        return self.exit_status.signal_name


class ExecutorUnusableError(ExecutorError):
    """The handle cannot serve requests: a previous call was interrupted, or it was closed."""
