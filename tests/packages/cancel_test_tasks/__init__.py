"""Tasks for the cancel tests: one that says which executor it runs in and then sleeps long,
and one that only says which executor it runs in."""

from __future__ import annotations

import os
import time
from pathlib import Path

from spider.tdl import task

__all__ = ["executor_pid", "write_pid_and_sleep"]


@task
def write_pid_and_sleep(pid_path: str, seconds: float) -> int:
    """Write the executor's pid to ``pid_path`` (atomically), then sleep ``seconds``."""
    partial = Path(pid_path + ".partial")
    partial.write_text(str(os.getpid()))
    partial.rename(pid_path)
    time.sleep(seconds)
    return os.getpid()


@task
def executor_pid() -> int:
    """The pid of the executor running the task."""
    return os.getpid()
