"""The overrun policy shared by storage's periodic loops."""

from __future__ import annotations

import math


def next_tick(deadline: float, interval: float, now: float) -> float:
    """The first tick of the schedule ``deadline + k * interval`` (k >= 1) that is after ``now``.

    Ticks missed while a slow pass ran are skipped rather than run back to back, and the
    schedule keeps its phase.
    """
    missed = max(0, math.floor((now - deadline) / interval))
    return deadline + (missed + 1) * interval
