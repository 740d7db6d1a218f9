"""``failure_report``: upstream's first line unchanged, the task and where it ran, a bounded
traceback."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, TaskInstanceId
from spider.core.task_id import TaskId
from spider.em.failure_report import MAX_TRACEBACK_CHARS, failure_report
from spider.em.pool import TaskFailed, TaskRequest


def _request(task_id: TaskId) -> TaskRequest:
    return TaskRequest(
        job_id=JobId(12),
        task_id=task_id,
        task_instance_id=TaskInstanceId(45),
        resource_group_id=ResourceGroupId(1),
        package="wordcount",
        task_func="merge",
        serialized_task_io=b"",
        hard_timeout=1.0,
    )


def test_the_report_names_the_task_and_ends_with_the_traceback() -> None:
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'b5'\n"
    failure = TaskFailed("in-task failure: KeyError: 'b5'", "execution", 7, traceback)

    report = failure_report(failure, _request(TaskId.index(3)), ExecutionManagerId(2))

    assert report.splitlines() == [
        "in-task failure: KeyError: 'b5'",
        "task 3 (wordcount::merge) of job 12, instance 45, on execution manager 2 "
        f"(host {socket.gethostname()})",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "KeyError: 'b5'",
    ]


def test_a_termination_task_is_named_by_its_kind() -> None:
    failure = TaskFailed("executor crashed: killed by SIGKILL", "crash")
    report = failure_report(failure, _request(TaskId.COMMIT), ExecutionManagerId(2))
    assert report.splitlines()[1].startswith("the commit task (wordcount::merge) of job 12")


@given(size=st.integers(0, 3 * MAX_TRACEBACK_CHARS))
def test_a_long_traceback_keeps_its_end(size: int) -> None:
    traceback = "".join(chr(ord("a") + i % 26) for i in range(size)) + "ValueError: last"
    failure = TaskFailed("in-task failure: ValueError: last", "execution", 1, traceback)

    report = failure_report(failure, _request(TaskId.index(0)), ExecutionManagerId(1))

    assert report.startswith("in-task failure: ValueError: last\n")
    assert report.endswith("ValueError: last")
    assert len(report) < MAX_TRACEBACK_CHARS + 300
    if len(traceback) > MAX_TRACEBACK_CHARS:
        assert "characters of the traceback left out" in report
