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
def spawn_process_tree(pids_path: str, started_fifo: str, hang: bool) -> list[int]:
    """Start a ``sleep`` child and a daemon (double fork, ``setsid``, then ``sleep``); write
    ``"<executor> <child> <daemon>"`` to ``pids_path`` (atomically), say so through
    ``started_fifo`` unless it is empty, then hang or return the pids."""
    child = subprocess.Popen(["sleep", "1000"])  # deliberately not waited for
    daemon = _spawn_daemon()
    pids = [os.getpid(), child.pid, daemon]
    partial = pids_path + ".partial"
    with open(partial, "w") as file:
        file.write(" ".join(map(str, pids)))
    os.rename(partial, pids_path)
    if started_fifo:
        with open(started_fifo, "wb") as started:
            started.write(b"started")
    while hang:
        time.sleep(1000)
    return pids


def _spawn_daemon() -> int:
    """A ``sleep 1000`` in its own session whose parent has exited: the classic daemon."""
    reader, writer = os.pipe()  # not inherited across exec: closed once the daemon runs sleep
    intermediate = os.fork()
    if intermediate == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.write(writer, str(os.getpid()).encode())
                os.execvp("sleep", ["sleep", "1000"])
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(intermediate, 0)
    with os.fdopen(reader, "rb") as pipe:
        return int(pipe.read())


@task
def write_stderr(lines: int, length: int, invalid_utf8: bool) -> int:
    """Write ``lines`` lines of ``length`` bytes (plus newline) to stderr; return bytes written."""
    line = b"\xff\xfe" * (length // 2) + b"x" * (length % 2) if invalid_utf8 else b"x" * length
    stream = sys.stderr.buffer
    for _ in range(lines):
        stream.write(line + b"\n")
    stream.flush()
    return lines * (length + 1)
