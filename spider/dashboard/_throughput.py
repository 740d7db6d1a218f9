"""``Throughput``: tasks finished per second over the last minutes, from storage's counters.

The cluster status carries how many task instances ended since storage started, by outcome;
two readings a few seconds apart give the rate. A reading lower than the one before means
storage restarted (its counters started again): that interval is left out, not drawn as a
negative rate.
"""

from __future__ import annotations

import collections
import itertools
from typing import Final

import attrs

WINDOW_SEC: Final = 600.0
"""How far back the plot goes."""


@attrs.define
class Throughput:
    """Readings of storage's finished-task count, and the rates between them."""

    window_sec: float = WINDOW_SEC
    _readings: collections.deque[tuple[float, int]] = attrs.field(factory=collections.deque)

    def add(self, at: float, finished: int) -> None:
        """A reading: ``finished`` task instances had ended by wall-clock time ``at``."""
        self._readings.append((at, finished))
        while self._readings and self._readings[0][0] < at - self.window_sec:
            self._readings.popleft()

    def points(self) -> list[tuple[float, float]]:
        """(time, tasks per second over the interval ending then), oldest first."""
        points = []
        for (before, count_before), (at, count) in itertools.pairwise(self._readings):
            if at > before and count >= count_before:
                points.append((at, (count - count_before) / (at - before)))
        return points
