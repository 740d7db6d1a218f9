"""``TaskOutcome``: how a task ended, with the readable message storage records for a failure.

Every failure message is stable and readable on its own, because it is what users see as the
job's error:

* ``in-task failure: ValueError: always_fail: intentional failure``
* ``hard timeout (200 ms) exceeded``
* ``executor crashed: killed by SIGABRT`` / ``executor crashed: exited with code 3 (protocol error)``
* ``task input too large: 9000000 bytes over the 8388608-byte frame limit``
* ``memory limit (256 MiB) exceeded``
* the executor's own message for a TDL failure (``TDL package 'x' not found: ...``)
"""

from __future__ import annotations

import enum
from typing import Final, TypeAlias

import attrs

from spider.executor.errors import ExecutorProtocolError
from spider.executor.exit_status import ExecutorExitStatus
from spider.executor.protocol import Failure, FrameKind, Success, TooLarge

IN_TASK_FAILURE_PREFIX: Final = "in-task failure: "

_EXECUTION_KIND: Final = "execution"
_MEMORY_ERROR: Final = "MemoryError"
_MIB: Final = 1024 * 1024


class PoolFailureKind(enum.StrEnum):
    """``TaskFailed.kind`` values the pool itself produces.

    Failures the executor reports keep the executor's kind (``"execution"``,
    ``"task_not_found"``, ``"package_not_found"``, ``"package_init"``, ``"deserialization"``,
    ``"serialization"``, ``"invalid_package_name"``, ``"definition"``, ``"internal"``).
    """

    TIMEOUT = "timeout"
    CRASH = "crash"
    INPUT_TOO_LARGE = "input_too_large"
    OUTPUT_TOO_LARGE = "output_too_large"
    MEMORY_LIMIT = "memory_limit"
    SHUTDOWN = "shutdown"
    REVOKED = "revoked"
    """Storage no longer wanted the instance (``ProcessPool.revoke``): it is not reported."""


@attrs.frozen
class TaskSucceeded:
    """The task ran; ``outputs`` is its output wire frame, for ``ReportTaskSuccess`` verbatim."""

    outputs: bytes
    elapsed_us: int
    """Executor time: package lookup (and first load), decoding, the task, encoding."""


@attrs.frozen
class TaskFailed:
    """The task did not succeed; ``message`` is what to send in ``ReportTaskFailure``."""

    message: str
    kind: str = attrs.field(converter=str)
    """A ``PoolFailureKind`` or the executor's failure kind: stable, for metrics and logs."""
    elapsed_us: int | None = None
    """Executor time when the executor answered; ``None`` when it could not (timeout, crash,
    shutdown)."""
    detail: str | None = None
    """The task's traceback, when there is one: for the EM's log, not for storage."""


TaskOutcome: TypeAlias = TaskSucceeded | TaskFailed
"""What ``ExecutorSlot.run`` returns."""


def outcome_of(
    response: Success | Failure | TooLarge, memory_limit_bytes: int | None
) -> TaskOutcome:
    """The outcome of an executor's answer to ``Execute``."""
    if isinstance(response, Success):
        return TaskSucceeded(response.outputs, response.elapsed_us)
    if isinstance(response, TooLarge):
        return too_large_failure(response)
    if memory_limit_bytes is not None and response.exc_type == _MEMORY_ERROR:
        # Under RLIMIT_AS a MemoryError is (almost always) the limit, not the machine.
        return TaskFailed(
            memory_limit_message(memory_limit_bytes),
            PoolFailureKind.MEMORY_LIMIT,
            response.elapsed_us,
            response.traceback,
        )
    message = response.message
    if response.kind == _EXECUTION_KIND:
        message = IN_TASK_FAILURE_PREFIX + message
    return TaskFailed(message, response.kind, response.elapsed_us, response.traceback)


def too_large_failure(response: TooLarge) -> TaskFailed:
    """``task input too large: N bytes over the L-byte frame limit`` (or output)."""
    if response.frame is FrameKind.REQUEST:
        what, kind = "input", PoolFailureKind.INPUT_TOO_LARGE
    else:
        what, kind = "output", PoolFailureKind.OUTPUT_TOO_LARGE
    return TaskFailed(
        f"task {what} too large: {response.size} bytes over the {response.limit}-byte frame limit",
        kind,
        response.elapsed_us,
    )


def memory_limit_message(limit_bytes: int) -> str:
    """``memory limit (256 MiB) exceeded`` (in bytes when the limit is not whole MiB)."""
    if limit_bytes % _MIB == 0:
        return f"memory limit ({limit_bytes // _MIB} MiB) exceeded"
    return f"memory limit ({limit_bytes} bytes) exceeded"


def hard_timeout_failure(hard_timeout: float) -> TaskFailed:
    """``hard timeout (200 ms) exceeded``."""
    milliseconds = f"{hard_timeout * 1000:.3f}".rstrip("0").rstrip(".")
    return TaskFailed(f"hard timeout ({milliseconds} ms) exceeded", PoolFailureKind.TIMEOUT)


def crash_failure(exit_status: ExecutorExitStatus) -> TaskFailed:
    """``executor crashed: killed by SIGABRT`` / ``executor crashed: exited with code 1 (...)``."""
    return TaskFailed(f"executor crashed: {exit_status.describe()}", PoolFailureKind.CRASH)


def protocol_failure(error: ExecutorProtocolError) -> TaskFailed:
    """The executor answered with something that is not a reply; it was killed."""
    return TaskFailed(
        f"executor crashed: it sent an invalid reply and was killed ({error})",
        PoolFailureKind.CRASH,
    )


def revoked_failure(*, started: bool) -> TaskFailed:
    """Storage revoked the instance (its job was cancelled or failed, a twin succeeded) and the
    pool killed it, or did not start it. Never reported: storage has already decided."""
    what = "killed" if started else "not run"
    return TaskFailed(
        f"{what}: storage revoked the task instance (its job ended or a twin succeeded)",
        PoolFailureKind.REVOKED,
    )


def shutdown_failure(*, started: bool) -> TaskFailed:
    """The pool's shutdown deadline passed while the task ran (or before it could start)."""
    if started:
        message = "killed at shutdown: the execution manager stopped before the task finished"
    else:
        message = "not run: the execution manager shut down before an executor was ready"
    return TaskFailed(message, PoolFailureKind.SHUTDOWN)
