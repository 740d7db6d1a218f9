"""An executor's process tree: keeping a task's processes findable, and killing all of them.

Both sides use it (``docs/operations.md#orphaned-work``). The executor makes itself a child
subreaper, so a process its task starts stays its descendant even after a double fork and
``setsid``: nothing re-parents it to init while the executor lives. Killing the tree is then a
walk of ``/proc`` for the root's descendants, SIGKILLed round after round until none is left.
Both need Linux; elsewhere ``become_subreaper`` says no and ``kill_descendants`` kills nothing,
and callers fall back to the process-group kill.

No Trio and nothing heavy here: the executor program imports it at start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

_PROC: Final = Path("/proc")
_PR_SET_CHILD_SUBREAPER: Final = 36
# A tree that keeps forking while it is killed shrinks within a few rounds (a SIGKILLed process
# forks no more); the bound only stops a walk that somehow never settles from hanging the caller.
_KILL_BOUND_SECONDS: Final = 2.0
_DEAD_STATES: Final = frozenset(("Z", "X", "x"))


def become_subreaper() -> bool:
    """Make this process a child subreaper (``PR_SET_CHILD_SUBREAPER``); ``False`` where the
    kernel has no such thing (not Linux, or the call failed)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: the executor pays for it once, other platforms never

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def tree_walk_supported() -> bool:
    """Whether descendants can be found (``/proc`` with per-process ``stat`` files)."""
    return (_PROC / "self" / "stat").exists()


def live_descendants(root: int) -> list[int]:
    """The live (not zombie) descendants of ``root``, parents before their children."""
    children: dict[int, list[int]] = {}
    live: set[int] = set()
    for pid, parent, state in _processes():
        children.setdefault(parent, []).append(pid)
        if state not in _DEAD_STATES:
            live.add(pid)
    found: list[int] = []
    seen = {root}
    pending = list(children.get(root, ()))
    while pending:
        pid = pending.pop()
        if pid in seen:  # the snapshot is not atomic: a reused pid could close a loop
            continue
        seen.add(pid)
        if pid in live:
            found.append(pid)
        # A zombie's children were already re-parented: it has none left to walk.
        pending.extend(children.get(pid, ()))
    return found


def kill_descendants(root: int) -> int:
    """SIGKILL every descendant of ``root``, again until none is alive; how many were signalled.

    Only sound while ``root`` is alive and a subreaper (or nothing below it daemonises): the
    orphans of a killed process must come back under ``root`` to be found in the next round.
    """
    if not tree_walk_supported():
        return 0
    signalled: set[int] = set()
    deadline = time.monotonic() + _KILL_BOUND_SECONDS
    while time.monotonic() < deadline:
        remaining = live_descendants(root)
        if not remaining:
            break
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                signalled.add(pid)
        # A SIGKILLed process is gone once it is next scheduled; give it that turn.
        time.sleep(0.001)
    return len(signalled)


def _processes() -> Iterable[tuple[int, int, str]]:
    """``(pid, parent pid, state)`` of every process in ``/proc``."""
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        # The command name is parenthesised and may itself hold spaces and parentheses.
        fields = text.rsplit(b")", 1)[1].split()
        yield int(entry.name), int(fields[1]), fields[0].decode()
