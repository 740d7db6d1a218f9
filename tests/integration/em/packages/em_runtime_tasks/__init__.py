"""Tasks for the EM runtime tests: ones the test releases, sleeps, and hangs."""

from __future__ import annotations

import time

from spider.tdl import task

__all__ = ["hang", "sleep_ms", "wait_for_release"]


@task
def wait_for_release(started_fifo: str, release_fifo: str) -> str:
    """Tell the test the task started (through one FIFO), then block until the test writes to
    the other; return what it wrote."""
    with open(started_fifo, "wb") as started:
        started.write(b"started")
    with open(release_fifo, "rb") as release:
        return release.read().decode()


@task
def sleep_ms(ms: int) -> int:
    """Sleep ``ms`` milliseconds, then return ``ms``."""
    time.sleep(ms / 1000)
    return ms


@task
def hang() -> None:
    """Never return."""
    while True:
        time.sleep(1000)
