"""Tasks that misbehave at the process level: crash, hang with a grandchild, flood stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from spider.tdl import task


@task
def always_abort() -> None:
    """Kill the executor with SIGABRT."""
    os.abort()


@task
def spawn_grandchild_and_hang() -> None:
    """Start a ``sleep 1000`` grandchild, then hang: for the hard-timeout process-group kill."""
    subprocess.Popen(["sleep", "1000"])  # deliberately not waited for
    while True:
        time.sleep(1000)


@task
def write_stderr(lines: int, length: int, invalid_utf8: bool) -> int:
    """Write ``lines`` lines of ``length`` bytes (plus newline) to stderr; return bytes written."""
    line = b"\xff\xfe" * (length // 2) + b"x" * (length % 2) if invalid_utf8 else b"x" * length
    stream = sys.stderr.buffer
    for _ in range(lines):
        stream.write(line + b"\n")
    stream.flush()
    return lines * (length + 1)
