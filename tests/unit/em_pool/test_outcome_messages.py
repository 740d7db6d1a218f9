"""The readable, stable failure messages the pool reports for every way a task can end."""

from __future__ import annotations

import signal

import pytest

from spider.em.pool import PoolFailureKind, TaskFailed, TaskSucceeded
from spider.em.pool.outcome import (
    crash_failure,
    hard_timeout_failure,
    outcome_of,
    protocol_failure,
    shutdown_failure,
)
from spider.executor import ExecutorExitStatus, Failure, FrameKind, Success, TooLarge
from spider.executor.errors import ExecutorProtocolError

MIB = 1024 * 1024


def failure(kind: str, message: str, exc_type: str | None = None) -> Failure:
    return Failure(kind, message, exc_type, "Traceback ...", elapsed_us=12)


def test_success_keeps_the_outputs_and_the_executor_time() -> None:
    assert outcome_of(Success(b"\x00\x00\x00\x00", 7), None) == TaskSucceeded(b"\0\0\0\0", 7)


def test_an_exception_in_the_task_is_an_in_task_failure_with_type_and_text() -> None:
    response = failure("execution", "ValueError: always_fail: intentional failure", "ValueError")
    assert outcome_of(response, None) == TaskFailed(
        "in-task failure: ValueError: always_fail: intentional failure",
        "execution",
        12,
        "Traceback ...",
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("task_not_found", "task 'y' not found in TDL package 'x'; it registers add"),
        ("package_not_found", "TDL package 'x' not found: '/p/x/__init__.py' is not a file"),
        ("package_init", "failed to import TDL package 'x': ImportError: nope"),
        ("internal", "internal executor error running x::y: KeyError: 1"),
    ],
)
def test_other_executor_failures_keep_the_executor_kind_and_message(
    kind: str, message: str
) -> None:
    outcome = outcome_of(failure(kind, message), None)
    assert isinstance(outcome, TaskFailed)
    assert (outcome.kind, outcome.message) == (kind, message)


@pytest.mark.parametrize(
    ("limit", "text"), [(256 * MIB, "256 MiB"), (100_000_000, "100000000 bytes")]
)
def test_a_memory_error_under_a_memory_limit_names_the_limit(limit: int, text: str) -> None:
    outcome = outcome_of(failure("execution", "MemoryError: ", "MemoryError"), limit)
    assert outcome == TaskFailed(
        f"memory limit ({text}) exceeded", PoolFailureKind.MEMORY_LIMIT, 12, "Traceback ..."
    )


def test_a_memory_error_without_a_limit_is_an_ordinary_in_task_failure() -> None:
    outcome = outcome_of(failure("execution", "MemoryError: ", "MemoryError"), None)
    assert isinstance(outcome, TaskFailed)
    assert (outcome.kind, outcome.message) == ("execution", "in-task failure: MemoryError: ")


def test_frames_over_the_limit_name_the_size_and_the_limit() -> None:
    request = TooLarge(FrameKind.REQUEST, 9_000_000, 8_388_608, 0)
    response = TooLarge(FrameKind.RESPONSE, 9_437_210, 8_388_608, 40)
    assert outcome_of(request, None) == TaskFailed(
        "task input too large: 9000000 bytes over the 8388608-byte frame limit",
        PoolFailureKind.INPUT_TOO_LARGE,
        0,
    )
    assert outcome_of(response, None) == TaskFailed(
        "task output too large: 9437210 bytes over the 8388608-byte frame limit",
        PoolFailureKind.OUTPUT_TOO_LARGE,
        40,
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "200"), (1.5, "1500"), (3600.0, "3600000"), (0.0005, "0.5")]
)
def test_a_hard_timeout_is_reported_in_milliseconds(seconds: float, text: str) -> None:
    assert hard_timeout_failure(seconds) == TaskFailed(
        f"hard timeout ({text} ms) exceeded", PoolFailureKind.TIMEOUT
    )


def test_a_crash_names_the_signal_or_the_exit_code() -> None:
    assert (
        crash_failure(ExecutorExitStatus(-signal.SIGABRT)).message
        == "executor crashed: killed by SIGABRT"
    )
    assert (
        crash_failure(ExecutorExitStatus(3)).message
        == "executor crashed: exited with code 3 (protocol error)"
    )
    assert crash_failure(ExecutorExitStatus(3)).kind == "crash"


def test_an_invalid_reply_is_a_crash_that_says_why() -> None:
    outcome = protocol_failure(ExecutorProtocolError("invalid response frame: unknown tag 99"))
    assert outcome.kind == PoolFailureKind.CRASH
    assert outcome.message == (
        "executor crashed: it sent an invalid reply and was killed "
        "(invalid response frame: unknown tag 99)"
    )


def test_shutdown_says_whether_the_task_ran() -> None:
    assert shutdown_failure(started=True).message.startswith("killed at shutdown")
    assert shutdown_failure(started=False).message.startswith("not run")
    assert shutdown_failure(started=True).kind == "shutdown"


def test_failure_kinds_are_plain_strings() -> None:
    assert repr(hard_timeout_failure(1.0).kind) == "'timeout'"
