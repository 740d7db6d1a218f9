"""The errors of ``spider.tdl``: one base class whose ``kind`` the executor puts on the wire."""

from __future__ import annotations

import traceback
from typing import ClassVar

from spider.core.errors import SpiderError


class TdlError(SpiderError):
    """Base class of every error of the task definition layer.

    ``kind`` is a stable machine-readable tag (the executor sends it with ``str(error)``);
    subclasses are flat so that a caller can catch exactly the failure it handles.
    """

    kind: ClassVar[str] = "tdl"


class TdlDefinitionError(TdlError):
    """A ``@task`` or ``@on_load`` function that breaks the rules (raised at import time)."""

    kind = "definition"


class TdlValueError(TdlError, ValueError):
    """A value that does not match its declared type, on either side of the codec."""

    kind = "value"


class TdlDeserializationError(TdlValueError):
    """Task inputs or a ``TaskContext`` that do not decode as the task declares them."""

    kind = "deserialization"


class TdlSerializationError(TdlValueError):
    """A task's return value that does not encode as its declared outputs."""

    kind = "serialization"


class TaskNotFound(TdlError):
    """A task name that the package does not register."""

    kind = "task_not_found"

    def __init__(self, task_name: str, package: str, available: list[str]) -> None:
        self.task_name = task_name
        self.package = package
        self.available = sorted(available)
        super().__init__(
            f"task {task_name!r} not found in TDL package {package!r}; "
            f"it registers {_summarize(self.available)}"
        )


class TaskExecutionError(TdlError):
    """The task's own code raised: carries the original type name, message and traceback."""

    kind = "execution"

    def __init__(self, task_name: str, exc_type: str, message: str, traceback: str) -> None:
        self.task_name = task_name
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"{exc_type}: {message}" if message else exc_type)

    @classmethod
    def from_exception(cls, task_name: str, exc: BaseException) -> TaskExecutionError:
        """Capture ``exc`` raised by task ``task_name``, without the TDL's own frames."""
        exc_type, message, formatted = _capture(exc, skip_frames=1)
        return cls(task_name, exc_type, message, formatted)


class PackageInitError(TdlError):
    """A package whose import or ``@on_load`` hook failed; its tasks cannot run."""

    kind = "package_init"

    def __init__(self, package: str, stage: str, exc: BaseException) -> None:
        self.package = package
        self.exc_type, self.message, self.traceback = _capture(exc, skip_frames=1)
        detail = f"{self.exc_type}: {self.message}" if self.message else self.exc_type
        super().__init__(f"failed to {stage} TDL package {package!r}: {detail}")


class PackageNotFound(TdlError):
    """No ``<package_dir>/<name>/__init__.py`` in any of the package directories."""

    kind = "package_not_found"


class InvalidPackageName(TdlError):
    """A package name with forbidden characters, or whose path leaves ``package_dir``."""

    kind = "invalid_package_name"


_MAX_LISTED_TASKS = 10


def _summarize(names: list[str]) -> str:
    if not names:
        return "no tasks"
    listed = ", ".join(names[:_MAX_LISTED_TASKS])
    more = len(names) - _MAX_LISTED_TASKS
    return f"{listed} (and {more} more)" if more > 0 else listed


def _capture(exc: BaseException, *, skip_frames: int) -> tuple[str, str, str]:
    tb = exc.__traceback__
    # The first frames are the TDL's own call into user code: noise in a task author's report.
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not frame.filename.startswith("<frozen importlib")]
    )
    return type(exc).__qualname__, str(exc), "".join(report.format())
