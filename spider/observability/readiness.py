"""``Readiness``: the conditions ``/readyz`` reports, each set by the part of the process that
knows it (storage: serving, its database taking writes; the scheduler: registered with storage;
the EM: registered, its executors started).

One board per process, like Prometheus's default registry: the parts of the embedded cluster
each add their conditions to the same ``/readyz``. A condition lives for a ``with`` block, so a
part that stops takes its conditions away with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

Probe = Callable[[], str | None]
"""Why a condition does not hold now, or ``None`` when it does."""


@attrs.define(eq=False)
class Condition:
    """A condition its owner sets; not ready, with a reason, until ``ready()``."""

    reason: str | None = "starting"
    """Why the condition does not hold; ``None`` when it does."""

    def ready(self) -> None:
        self.reason = None

    def not_ready(self, reason: str) -> None:
        self.reason = reason


@attrs.define(eq=False)
class Readiness:
    """The process's conditions. Read from the HTTP server's thread, set from Trio's: a
    condition's state is one attribute, and the table of conditions is guarded by a lock."""

    _probes: list[tuple[str, Probe]] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @contextmanager
    def condition(self, name: str, reason: str = "starting") -> Iterator[Condition]:
        """A condition the block sets, not ready with ``reason`` until it says so."""
        condition = Condition(reason)
        with self.check(name, lambda: condition.reason):
            yield condition

    @contextmanager
    def check(self, name: str, probe: Probe) -> Iterator[None]:
        """A condition ``probe`` evaluates at each ``/readyz``, for the block. ``probe`` runs on
        the HTTP server's thread: it may only read."""
        entry = (name, probe)
        with self._lock:
            self._probes.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._probes.remove(entry)

    def report(self) -> dict[str, str | None]:
        """Each condition's name and reason (``None``: it holds); a name reported twice (two
        storages in one test process) gets a suffix."""
        with self._lock:
            probes = list(self._probes)
        report: dict[str, str | None] = {}
        for name, probe in probes:
            key, copies = name, 1
            while key in report:
                copies += 1
                key = f"{name} #{copies}"
            report[key] = probe()
        return report

    def ready(self) -> bool:
        """Whether some condition is reported and every one holds."""
        return all_ready(self.report())


def all_ready(report: dict[str, str | None]) -> bool:
    """Whether ``report`` (``Readiness.report``) has a condition and every one holds."""
    return bool(report) and all(reason is None for reason in report.values())


READINESS = Readiness()
"""The process's board: what ``/readyz`` answers from."""
