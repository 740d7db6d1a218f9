"""Tasks for the process-pool tests: they report pids and misbehave in observable ways."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from spider.tdl import task

__all__ = [
    "allocate",
    "executor_pid",
    "meet_at_fifo",
    "spawn_escaped_grandchild",
    "spawn_grandchild_and_hang",
]


@task
def executor_pid() -> int:
    """The pid of the executor running the task."""
    return os.getpid()


@task
def spawn_grandchild_and_hang(pid_path: str) -> None:
    """Start a ``sleep`` grandchild, write its pid to ``pid_path``, then hang forever."""
    child = subprocess.Popen(["sleep", "1000"])
    _write_atomically(Path(pid_path), str(child.pid))
    while True:
        time.sleep(1000)


@task
def spawn_escaped_grandchild() -> int:
    """Start a ``sleep`` in a new session (outside the executor's group) holding stderr."""
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    return child.pid


@task
def allocate(size: int) -> int:
    """Allocate ``size`` bytes at once."""
    return len(bytearray(size))


@task
def meet_at_fifo(path: str, writer: bool) -> bool:
    """Open the FIFO at ``path`` for writing or reading: blocks until the other side opens it."""
    if writer:
        with open(path, "wb") as fifo:
            fifo.write(b"met")
        return True
    with open(path, "rb") as fifo:
        return fifo.read() == b"met"


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)
