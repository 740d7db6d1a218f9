"""Module state shared by the package's modules (imported relatively, to prove that works)."""

from __future__ import annotations

import time

INITIALIZED = False


def pause(seconds: float) -> None:
    """A real sleep: these tasks run in a subprocess, outside any event loop."""
    time.sleep(seconds)
