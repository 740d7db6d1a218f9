"""The execution manager's Prometheus metrics (docs/operations.md#metrics-and-health).

Counters are module-level and counted where the event happens (a task ends, an executor starts
or is replaced); the gauges of a serving EM (tasks running, reports in flight, consumed
assignments awaiting their acknowledgement) are read at each scrape by ``ServingGauges``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Final

import attrs
import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from spider.observability.live import LiveSources

TASKS_FINISHED: Final = prometheus_client.Counter(
    "spider_em_tasks_finished_total",
    "Tasks this EM ran to an outcome: succeeded, or the failure's kind (execution, timeout, "
    "crash, memory_limit, revoked, shutdown, ...; other for a kind an executor made up).",
    ["outcome"],
)
TASK_SECONDS: Final = prometheus_client.Histogram(
    "spider_em_task_seconds",
    "Wall time of a task on its executor, from handing it over to its outcome.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EXECUTOR_STARTS: Final = prometheus_client.Counter(
    "spider_em_executor_starts_total",
    "Task executor processes started, by reason: start, spare, replacement.",
    ["reason"],
)
EXECUTOR_REPLACEMENTS: Final = prometheus_client.Counter(
    "spider_em_executor_replacements_total",
    "Executors killed or retired, by reason: crashed, invalid_reply, hard_timeout, revoked, "
    "shutdown, memory_limit, recycled.",
    ["reason"],
)

_KNOWN_KINDS: Final = frozenset(
    {
        "execution",
        "task_not_found",
        "package_not_found",
        "package_init",
        "deserialization",
        "serialization",
        "invalid_package_name",
        "definition",
        "internal",
        "timeout",
        "crash",
        "input_too_large",
        "output_too_large",
        "memory_limit",
        "shutdown",
        "revoked",
    }
)


def task_finished(kind: str | None, seconds: float) -> None:
    """Count a task's outcome: ``kind`` ``None`` for a success, else its failure kind."""
    outcome = "succeeded" if kind is None else kind if kind in _KNOWN_KINDS else "other"
    TASKS_FINISHED.labels(outcome).inc()
    TASK_SECONDS.observe(seconds)


@attrs.frozen
class ServingEm:
    """What the gauges read of one serving EM life."""

    running: Callable[[], int]
    reports: Callable[[], int]
    records: Callable[[], int]


class ServingGauges(Collector):
    """The gauges of the serving EMs (one per process but in tests), read at scrape time and
    summed."""

    def __init__(self) -> None:
        self.ems = LiveSources[ServingEm]()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ems = self.ems.snapshot()
        yield GaugeMetricFamily(
            "spider_em_tasks_running",
            "Slots running (or starting) a task.",
            value=sum(em.running() for em in ems),
        )
        yield GaugeMetricFamily(
            "spider_em_reports_in_flight",
            "Task outcomes handed to the reporter and not yet answered by storage.",
            value=sum(em.reports() for em in ems),
        )
        yield GaugeMetricFamily(
            "spider_em_assignment_records_pending",
            "Consumed assignments whose acknowledgement to the scheduler is still due.",
            value=sum(em.records() for em in ems),
        )


GAUGES: Final = ServingGauges()
prometheus_client.REGISTRY.register(GAUGES)


def collecting(
    running: Callable[[], int], reports: Callable[[], int], records: Callable[[], int]
) -> AbstractContextManager[None]:
    """A serving EM's gauges in the metrics for the block."""
    return GAUGES.ems.live(ServingEm(running, reports, records))
