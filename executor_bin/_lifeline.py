"""The executor's lifeline to its parent: when the parent goes, the task and its processes go.

The parent (the EM) holds the only write end of the executor's stdin, so the kernel closes it
when the parent dies, however it dies (SIGKILL included). A thread that is not the task's
thread waits for that hang-up with ``poll`` (without reading: requests stay for the main
thread). If a task is running then, nobody will ever read its result: the thread kills every
process the task started and then the executor itself. Between tasks the main thread sees the
end-of-file itself and ends as it always did.

Why not ``PR_SET_PDEATHSIG``: it fires when the parent *thread* that forked ends, and Trio
spawns processes from worker threads that end when idle (``docs/operations.md#orphaned-work``).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading

import attrs

from spider.executor.process_tree import become_subreaper, kill_descendants

_LOG = logging.getLogger("spider.executor")


@attrs.define(eq=False)
class Lifeline:
    """Whether the parent is still there, and whether a task is running on the main thread."""

    request_fd: int
    subreaper: bool
    """Whether orphans of the task's processes come back to the executor (Linux)."""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _running: bool = attrs.field(default=False, init=False)
    _lost: bool = attrs.field(default=False, init=False)

    @classmethod
    def watch(cls, request_fd: int) -> Lifeline:
        """Become a subreaper and start watching ``request_fd`` for the parent's hang-up."""
        lifeline = cls(request_fd, subreaper=become_subreaper())
        if hasattr(select, "poll"):
            threading.Thread(target=lifeline._watch, name="lifeline", daemon=True).start()
        return lifeline

    def begin_task(self) -> bool:
        """Mark a task as running; ``False`` (start nothing) if the parent is already gone."""
        with self._lock:
            if self._lost:
                return False
            self._running = True
            return True

    def end_task(self) -> None:
        """Mark the task as done."""
        with self._lock:
            self._running = False

    def _watch(self) -> None:
        poller = select.poll()
        # No events asked for: poll reports only a hang-up (or an error), never readable data.
        poller.register(self.request_fd, 0)
        while not poller.poll():
            pass
        with self._lock:
            self._lost = True
            running = self._running
        if not running:
            return  # the main thread reads end-of-file next and ends the executor
        _LOG.warning("The parent is gone while a task runs; killing the task and its processes.")
        kill_descendants(os.getpid())
        # Leading its own group (the EM starts it in a new session), the executor takes the
        # group with it: all that is left to kill where no descendant could be found.
        pid = os.getpid()
        if os.getpgrp() == pid:
            os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
