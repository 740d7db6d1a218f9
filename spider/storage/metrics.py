"""Storage's Prometheus metrics (docs/operations.md#metrics-and-health).

Counters are module-level and counted where the event happens; the gauges (lane depths, live
instances, jobs in memory, the database's availability) are read from the serving
``StorageState`` at each scrape by ``StateGauges``, so nothing is updated on the hot path for
them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from spider.observability.live import LiveSources
from spider.storage.inbound_queue import Lane

if TYPE_CHECKING:
    from spider.storage.state import StorageState

JOBS_SUBMITTED: Final = prometheus_client.Counter(
    "spider_storage_jobs_submitted_total", "Jobs registered (RegisterJob and SubmitJob)."
)
JOBS_FINISHED: Final = prometheus_client.Counter(
    "spider_storage_jobs_finished_total",
    "Jobs that reached a terminal state, by that state.",
    ["state"],
)
TASKS_STARTED: Final = prometheus_client.Counter(
    "spider_storage_task_instances_started_total",
    "Task instances registered (an EM started running a task).",
)
TASK_OUTCOMES: Final = prometheus_client.Counter(
    "spider_storage_task_outcomes_total",
    "Task instances that ended, by outcome: succeeded, failed (reported by their EM), "
    "timed_out (storage's hard timeout), lost (their EM was declared dead).",
    ["outcome"],
)


def task_outcome_counts() -> dict[str, int]:
    """``TASK_OUTCOMES`` as it stands, by outcome (for the cluster status: the counter is the
    one count of finished instances, whether or not anything scrapes it)."""
    return {
        sample.labels["outcome"]: int(sample.value)
        for family in TASK_OUTCOMES.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.value
    }


RETRIES: Final = prometheus_client.Counter(
    "spider_storage_task_retries_total",
    "Failed or timed-out instances whose task had a retry left (the rest fail their job).",
)
SOFT_TIMEOUTS: Final = prometheus_client.Counter(
    "spider_storage_soft_timeouts_total",
    "Tasks offered again because an instance ran past its soft timeout.",
)
COMMIT_SECONDS: Final = prometheus_client.Histogram(
    "spider_storage_db_commit_seconds",
    "Time to make one batch of writes durable (one transaction, one fsync on SQLite).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMITTED_WRITES: Final = prometheus_client.Counter(
    "spider_storage_db_writes_total",
    "Writes made durable; divided by the commit count it is the group commit's batching.",
)

SUCCEEDED: Final = TASK_OUTCOMES.labels("succeeded")
FAILED: Final = TASK_OUTCOMES.labels("failed")
TIMED_OUT: Final = TASK_OUTCOMES.labels("timed_out")
LOST: Final = TASK_OUTCOMES.labels("lost")


class StateGauges(Collector):
    """The gauges of the serving ``StorageState`` s (one per process but in tests), read at
    scrape time and summed."""

    def __init__(self) -> None:
        self.states = LiveSources["StorageState"]()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = self.states.snapshot()
        lanes = GaugeMetricFamily(
            "spider_storage_lane_depth",
            "Ready tasks waiting in each lane for the scheduler.",
            labels=["lane"],
        )
        for lane in Lane:
            lanes.add_metric([lane.value], sum(s.lifecycle.queue.depth(lane) for s in states))
        yield lanes
        yield GaugeMetricFamily(
            "spider_storage_task_instances_live",
            "Task instances running (registered, not yet reported).",
            value=sum(len(s.lifecycle.pool) for s in states),
        )
        yield GaugeMetricFamily(
            "spider_storage_jobs_cached",
            "Jobs held in memory: every unfinished job, and finished ones until collected.",
            value=sum(len(s.lifecycle.cache) for s in states),
        )
        yield GaugeMetricFamily(
            "spider_storage_db_available",
            "1 while the database takes writes, 0 during an outage.",
            value=0 if any(s.persistence.outage.ongoing for s in states) else 1,
        )


GAUGES: Final = StateGauges()
prometheus_client.REGISTRY.register(GAUGES)


def collecting(state: StorageState) -> AbstractContextManager[None]:
    """``state``'s gauges in the metrics for the block."""
    return GAUGES.states.live(state)
