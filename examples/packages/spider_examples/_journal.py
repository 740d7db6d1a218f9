"""What every example task does around its work: journal lines and the optional delay."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spider.core import TaskKind
from spider.tdl import TaskContext

STATE_DIR_ENV = "SPIDER_EXAMPLES_STATE_DIR"
DELAY_ENV = "SPIDER_EXAMPLES_TASK_DELAY_MS"
JOURNAL_FILE = "journal.log"


def state_dir() -> Path:
    """The directory named by ``SPIDER_EXAMPLES_STATE_DIR``; a readable error if it is unset."""
    value = os.environ.get(STATE_DIR_ENV)
    if not value:
        raise RuntimeError(f"set {STATE_DIR_ENV} to a writable directory to run this task")
    return Path(value)


def task_label(ctx: TaskContext) -> str:
    """``index:3``, ``commit`` or ``cleanup``: how the journal and marker files name a task."""
    if ctx.task_id.kind is TaskKind.INDEX:
        return f"index:{ctx.task_id.position}"
    return ctx.task_id.kind.name.lower()


def _append(ctx: TaskContext, phase: str) -> None:
    directory = os.environ.get(STATE_DIR_ENV)
    if not directory:
        return
    line = f"{ctx.job_id} {task_label(ctx)} {time.time():.6f} {phase}\n"
    # One small O_APPEND write per line: executors of several EMs share the file, and such writes
    # do not interleave.
    fd = os.open(Path(directory) / JOURNAL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@contextmanager
def journaled(ctx: TaskContext) -> Iterator[None]:
    """Journal the start, run the body, sleep the configured delay, journal the end.

    Nothing is journaled for the end when the body raises: only completed runs count as ended.
    """
    _append(ctx, "start")
    yield
    delay_ms = int(os.environ.get(DELAY_ENV) or 0)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)  # tasks run synchronously in an executor subprocess
    _append(ctx, "end")
