"""``DatabaseOutage``: whether the database refuses work now, since when and why, and the last
outage that ended.

Storage's own outage must not fail anyone's work: while the database cannot write, an EM cannot
record a heartbeat and cannot report an outcome, so the deadlines that measure them would
expire through no fault of the EM or the task. ``Persistence`` records every call here; the
instance sweep skips timeouts while an outage lasts, ``TaskInstancePool.postpone`` moves the
deadlines of the instances it overlapped when it ends, and ``ExecutionManagerLiveness`` does not
count the outage against an EM's heartbeats (docs/storage.md#database-outages).

An outage starts with the first call that finds the database unavailable (a full disk, an I/O
error, a read-only or unreachable server). It ends with the next group-committed write that
succeeds: those always write rows (a heartbeat, a job, outputs), so one succeeding means the
database takes writes again. Reads go on succeeding through a full disk; one ends an outage
only if no write failed during it (a connection that came back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs
import trio

LOGGER = logging.getLogger("spider.storage.outage")


@attrs.frozen
class OutagePeriod:
    """An outage, in monotonic seconds (in-memory deadlines) and wall seconds (the database)."""

    started: float
    ended: float
    started_wall: float
    ended_wall: float

    @property
    def duration(self) -> float:
        return self.ended - self.started


@attrs.define(eq=False)
class DatabaseOutage:
    """The database's availability as storage's calls found it."""

    clock: Callable[[], float] = time.time
    """Wall-clock seconds, as stored in the database."""
    monotonic: Callable[[], float] = trio.current_time
    reason: str | None = None
    """Why the last failed call failed, while the outage lasts."""
    since: float | None = None
    """Monotonic start of the ongoing outage; ``None`` while the database works."""
    since_wall: float | None = None
    last: OutagePeriod | None = None
    """The last outage that ended."""
    _write_failed: bool = False
    _on_end: list[Callable[[OutagePeriod], object]] = attrs.field(factory=list)

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def on_end(self, callback: Callable[[OutagePeriod], object]) -> None:
        """Call ``callback`` with every outage as it ends (synchronously, from the call that
        found the database working again)."""
        self._on_end.append(callback)

    def failed(self, reason: str, *, write: bool) -> None:
        """A call found the database unavailable."""
        if self.since is None:
            self.since = self.monotonic()
            self.since_wall = self.clock()
            LOGGER.error(
                "the storage database is unavailable: %s; requests that write are answered "
                "UNAVAILABLE, reads are still served, and no deadline runs until it recovers",
                reason,
                extra={"reason": reason},
            )
        self.reason = reason
        self._write_failed = self._write_failed or write

    def succeeded(self, *, write: bool) -> None:
        """A call succeeded; a group-committed write (or a read, if no write failed) ends the
        ongoing outage."""
        if self.since is None or self.since_wall is None or (self._write_failed and not write):
            return
        period = OutagePeriod(self.since, self.monotonic(), self.since_wall, self.clock())
        self.since = self.since_wall = self.reason = None
        self._write_failed = False
        self.last = period
        LOGGER.warning(
            "the storage database is available again after %.1f s; deadlines of work it "
            "overlapped are postponed by the time it lasted",
            period.duration,
            extra={"outage_sec": period.duration},
        )
        for callback in self._on_end:
            callback(period)
