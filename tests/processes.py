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
