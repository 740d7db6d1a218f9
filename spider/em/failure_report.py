"""What a failed task's report tells a person: the failure as upstream Spider words it, then
which task it was and where it ran, then the task's traceback.

Storage keeps the report as the job's error (``GetJobError``, ``spider error``), so the first
line stays exactly what an upstream client expects (``in-task failure: KeyError: 'b5'``,
``hard timeout (200 ms) exceeded``...) and what follows is for the person reading it::

    in-task failure: KeyError: 'b5'
    task 3 (wordcount::merge) of job 12, instance 45, on execution manager 2 (host worker-1)
    Traceback (most recent call last):
      ...
    KeyError: 'b5'
"""

from __future__ import annotations

import socket
from typing import Final

from spider.core.bounds import last_chars
from spider.core.ids import ExecutionManagerId
from spider.core.task_id import TaskKind
from spider.em.pool import TaskFailed, TaskRequest

MAX_TRACEBACK_CHARS: Final = 16 * 1024
"""The most of a traceback a report carries; its end (the innermost frames and the exception)
is kept. Storage truncates a whole report at ``runtime.limits.max_error_message_chars``."""

HOST: Final = socket.gethostname()


def failure_report(failure: TaskFailed, request: TaskRequest, em_id: ExecutionManagerId) -> str:
    """The ``error_message`` to report for ``failure`` of ``request``."""
    task = request.task_id
    which = (
        f"task {task.position}"
        if task.kind is TaskKind.INDEX
        else f"the {task.kind.value.lower()} task"
    )
    lines = [
        failure.message,
        f"{which} ({request.package}::{request.task_func}) of job {request.job_id}, instance "
        f"{request.task_instance_id}, on execution manager {em_id} (host {HOST})",
    ]
    if failure.detail:
        lines.append(last_chars(failure.detail.rstrip("\n"), MAX_TRACEBACK_CHARS, "traceback"))
    return "\n".join(lines)
