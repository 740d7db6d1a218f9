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
# A tree that keeps forking while it is killed settles within a few rounds (a process with a
# SIGKILL pending forks no more); the bound only keeps a walk that somehow never settles (pids
# reused as fast as they die) from hanging the caller.
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
    """SIGKILL every descendant of ``root``, round after round until a walk finds none it has not
    signalled yet; how many were signalled.

    Only sound while ``root`` is alive and a subreaper (or nothing below it daemonises): the
    orphans of a killed process must come back under ``root`` to be found in the next round.
    A process already signalled is not waited for: one stuck in the kernel (state D) dies when
    it leaves it, and forks nothing before.
    """
    if not tree_walk_supported():
        return 0
    signalled: set[int] = set()
    deadline = time.monotonic() + _KILL_BOUND_SECONDS
    while time.monotonic() < deadline:
        new = [pid for pid in live_descendants(root) if pid not in signalled]
        if not new:
            break
        for pid in new:
            signalled.add(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
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
