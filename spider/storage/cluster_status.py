"""``ClusterSnapshot``: the cluster as storage sees it, for Spider-py's ``GetClusterStatus``.

Spider's protocol has no call for it; ``spider.storage.service.cluster_status`` serves it as
``spider_py.status.ClusterStatusService``. Queue depths, live task instances and cached jobs come
from memory; execution managers and stored jobs come from the database, which is the authority
on liveness and holds jobs this process no longer caches. The database's health is what
storage's own calls found (``DatabaseOutage``): reads go on while a full disk refuses writes.
"""

from __future__ import annotations

import attrs

from spider.core.ids import ExecutionManagerId, SessionId
from spider.core.job_state import JobState
from spider.storage import metrics
from spider.storage.inbound_queue import Lane
from spider.storage.job_lifecycle import JobLifecycle
from spider.storage.outage import DatabaseOutage

DEAD_EXECUTION_MANAGERS_LISTED = 32
"""Dead EMs are never deleted, so only the most recently heard-from are listed (all counted)."""


@attrs.frozen
class ExecutionManagerStatus:
    """One execution manager: its database row and the live instances it holds here."""

    id: ExecutionManagerId
    ip_address: str
    alive: bool
    seconds_since_heartbeat: float
    running_task_instances: int


@attrs.frozen
class LaneStatus:
    """An inbound-queue lane: entries waiting for the scheduler, and the warning mark."""

    depth: int
    capacity: int


@attrs.frozen
class DatabaseHealth:
    """Whether the database takes writes, as storage's own calls last found it."""

    writable: bool
    problem: str
    """The database's error while not writable, else empty."""
    unwritable_for_sec: float
    last_outage_sec: float
    """The last outage that ended (0 if none) and how long ago it ended."""
    since_last_outage_sec: float

    @classmethod
    def of(cls, outage: DatabaseOutage) -> DatabaseHealth:
        now = outage.monotonic()
        last = outage.last
        return cls(
            not outage.ongoing,
            outage.reason or "",
            0.0 if outage.since is None else now - outage.since,
            0.0 if last is None else last.duration,
            0.0 if last is None else now - last.ended,
        )


@attrs.frozen
class ClusterSnapshot:
    """What ``GetClusterStatus`` answers (a client reads it into its ``ClusterStatus``)."""

    session_id: SessionId
    execution_managers: tuple[ExecutionManagerStatus, ...]
    """Every Alive EM, then the most recently heard-from Dead ones."""
    dead_execution_managers: int
    dead_execution_managers_listed_max: int
    lanes: dict[Lane, LaneStatus]
    live_task_instances: int
    cached_jobs: dict[JobState, int]
    """Every non-terminal job, and terminated ones while retained in the job cache."""
    terminated_job_retention_sec: float
    stored_jobs: dict[JobState, int]
    """Every job row in the database (terminated ones until the database retention)."""
    database: DatabaseHealth
    task_outcomes: dict[str, int]
    """Task instances ended since this process started, by outcome."""


async def cluster_status(lifecycle: JobLifecycle, retention_sec: float) -> ClusterSnapshot:
    """Take the snapshot; the database is read twice, the in-memory parts after the reads."""
    listing = await lifecycle.persistence.list_execution_managers(DEAD_EXECUTION_MANAGERS_LISTED)
    stored_jobs = await lifecycle.persistence.count_jobs_by_state()
    # Read memory after the awaits, so the in-memory figures are as of one instant.
    now = lifecycle.clock()
    per_em = lifecycle.pool.count_by_execution_manager()
    queue = lifecycle.queue
    return ClusterSnapshot(
        lifecycle.session,
        tuple(
            ExecutionManagerStatus(
                record.id,
                record.ip_address,
                record.alive,
                max(0.0, now - record.last_heartbeat_at),
                per_em.get(record.id, 0),
            )
            for record in listing.execution_managers
        ),
        listing.dead_total,
        DEAD_EXECUTION_MANAGERS_LISTED,
        {lane: LaneStatus(queue.depth(lane), queue.capacity(lane)) for lane in Lane},
        len(lifecycle.pool),
        lifecycle.cache.count_by_state(),
        retention_sec,
        stored_jobs,
        DatabaseHealth.of(lifecycle.persistence.outage),
        metrics.task_outcome_counts(),
    )
