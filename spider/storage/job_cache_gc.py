"""Retention of terminated jobs: evicted from memory after minutes, deleted from the DB after days.

Every ``job_cache_gc.gc_interval_sec`` (the first pass one interval after start), jobs that
ended at least ``terminated_job_retention_sec`` ago leave the job cache (their state, outputs
and error are then read from the database), and jobs that ended more than ``db_retention_sec``
ago are deleted from the database with their task outputs (upstream never deleted them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

import attrs
import trio

from spider.core.ids import JobId
from spider.storage._ticks import next_tick
from spider.storage.config import JobCacheGcConfig
from spider.storage.errors import StorageUnavailable
from spider.storage.job_cache import JobCache
from spider.storage.persistence import Persistence

LOGGER = logging.getLogger("spider.storage.job_cache_gc")


@attrs.define(eq=False)
class TerminatedJobCollector:
    """Evicts terminated jobs from the cache and deletes old ones from the database."""

    cache: JobCache
    persistence: Persistence
    config: JobCacheGcConfig
    db_retention: float
    clock: Callable[[], float]
    """Wall-clock seconds (the database's ``ended_at``)."""
    monotonic: Callable[[], float] = trio.current_time

    def evict(self) -> list[JobId]:
        """Evict the jobs whose cache retention has expired (``>=``: exactly on time counts)."""
        return self.cache.evict_expired(self.monotonic(), self.config.terminated_job_retention_sec)

    async def delete_expired(self) -> int:
        """Delete terminated jobs that ended more than ``db_retention`` seconds ago."""
        return await self.persistence.delete_terminated_jobs(self.clock() - self.db_retention)

    async def collect(self) -> tuple[list[JobId], int]:
        """One pass: evict, then delete. Returns the evicted ids and the deleted count."""
        evicted = self.evict()
        deleted = await self.delete_expired()
        if evicted or deleted:
            LOGGER.info(
                "evicted %d terminated job(s) from the cache, deleted %d from the database",
                len(evicted),
                deleted,
            )
        return evicted, deleted

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Collect every ``gc_interval_sec``; ticks missed by a slow pass are skipped."""
        task_status.started()
        interval = self.config.gc_interval_sec
        deadline = trio.current_time() + interval
        while True:
            await trio.sleep_until(deadline)
            try:
                await self.collect()
            except StorageUnavailable as exc:
                LOGGER.warning("deleting expired jobs skipped: %s", exc)
            deadline = next_tick(deadline, interval, trio.current_time())
