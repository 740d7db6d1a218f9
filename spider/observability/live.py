"""``LiveSources``: the running objects a collector reads its gauges from at scrape time.

A component's gauges (lane depths, EMs known...) are registered once per process, when its
metrics module is imported, and read from whichever instances run: one in a service process,
several in a test process that runs two storages, none once they stop (each gauge then reads 0).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class LiveSources(Generic[T]):
    """The instances a collector reads; ``live`` adds one for a block."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._lock = threading.Lock()  # the metrics server's thread reads the list

    @contextmanager
    def live(self, item: T) -> Iterator[None]:
        with self._lock:
            self._items.append(item)
        try:
            yield
        finally:
            with self._lock:
                self._items.remove(item)

    def snapshot(self) -> list[T]:
        with self._lock:
            return list(self._items)
