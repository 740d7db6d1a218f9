"""Probes of this test process's children and file descriptors, shared by the process tests.

Session fixtures may own long-lived children (the private MariaDB server), so tests compare
against a snapshot taken before they start rather than against an empty set.
"""

from __future__ import annotations

import os
from pathlib import Path


def running_children() -> set[int]:
    """The live processes whose parent is this test process."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == os.getpid() and state not in ("Z", "X"):
            children.add(int(entry.name))
    return children


def open_fd_count() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


async def all_exit_within(pids: list[int], seconds: float) -> list[int]:
    """Waits (through pidfds, readable once a process has exited, zombie or not) up to
    ``seconds`` in all for ``pids``, which need not be our children; those still running."""
    import trio  # only the async tests need it

    deadline = trio.current_time() + seconds
    running = []
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            with trio.move_on_at(deadline):
                await trio.lowlevel.wait_readable(pidfd)
                continue
            running.append(pid)
        finally:
            os.close(pidfd)
    return running
