"""``PeerLogLimit``: at most a few WARNING lines per client machine per minute for refused calls.

A refused call (a body that does not decode, a missing cluster credential) is logged as one
WARNING line, so an operator sees who is sending what. A client that sends ten thousand of them
a second would otherwise write ten thousand lines a second: disk, CPU and the one line that
mattered drowned. Lines are counted per peer host (a client's connections share it, whatever
their ports); past ``burst`` in a window the rest are left out, and the next line logged for
that host says how many were. Nothing is lost from the counts: every refused call is still in
``spider_rpc_server_handling_seconds`` under its method and status code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

import attrs

DEFAULT_BURST: Final = 10
DEFAULT_WINDOW_SEC: Final = 60.0
DEFAULT_MAX_PEERS: Final = 4096
"""Hosts remembered at once; past it, the window that started first is dropped (at worst a
flood from more hosts than this logs ``burst`` lines per host per window again)."""


@attrs.define
class _Window:
    started: float
    logged: int = 0
    left_out: int = 0


@attrs.define(eq=False)
class PeerLogLimit:
    """Per peer host, ``burst`` lines per ``window_sec``; thread-safe. Each ``serve`` has its
    own, shared by its body checks and its cluster-credential check."""

    burst: int = DEFAULT_BURST
    window_sec: float = DEFAULT_WINDOW_SEC
    max_peers: int = DEFAULT_MAX_PEERS
    clock: Callable[[], float] = time.monotonic
    _windows: dict[str, _Window] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def admit(self, peer: object) -> int | None:
        """Whether to log a line about ``peer`` (a ``(host, port)`` address, or anything else
        naming it): ``None`` to leave it out, else how many lines about this host were left
        out since the last one logged."""
        host = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        now = self.clock()
        with self._lock:
            window = self._windows.get(host)
            if window is None or now - window.started >= self.window_sec:
                left_out = window.left_out if window is not None else 0
                self._start(host, now)
                return left_out
            if window.logged < self.burst:
                window.logged += 1
                left_out, window.left_out = window.left_out, 0
                return left_out
            window.left_out += 1
            return None

    def _start(self, host: str, now: float) -> None:
        self._windows.pop(host, None)
        if len(self._windows) >= self.max_peers:
            # Dicts keep insertion order and a host is re-inserted when its window restarts:
            # the first key is the window that started longest ago.
            del self._windows[next(iter(self._windows))]
        self._windows[host] = _Window(now, logged=1)


def left_out_note(left_out: int) -> str:
    """The tail a logged line carries when lines about its host were left out before it."""
    if not left_out:
        return ""
    return f" ({left_out} more such line(s) from this host were left out; see docs/limits.md)"
