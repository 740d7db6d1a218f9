"""The scheduler's Prometheus metrics (docs/operations.md#metrics-and-health): placements and
reschedules counted where they happen, the queue and the EMs read at each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from spider.observability.live import LiveSources

if TYPE_CHECKING:  # the core counts into this module
    from spider.scheduler.core import SchedulerCore
    from spider.scheduler.em_registry import ExecutionManagerRegistry

TASKS_PLACED: Final = prometheus_client.Counter(
    "spider_scheduler_tasks_placed_total",
    "Assignments the scheduler decided (each is handed to one EM).",
)
ASSIGNMENTS_RESCHEDULED: Final = prometheus_client.Counter(
    "spider_scheduler_assignments_rescheduled_total",
    "Assignments decided again because their EM died, left, or never received them.",
)


class SchedulerGauges(Collector):
    """The gauges of the running schedulers (one per process but in tests), read at scrape
    time and summed."""

    def __init__(self) -> None:
        self.schedulers = LiveSources[tuple["SchedulerCore", "ExecutionManagerRegistry"]]()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        schedulers = self.schedulers.snapshot()
        counts = [registry.counts() for _, registry in schedulers]
        yield GaugeMetricFamily(
            "spider_scheduler_dispatch_queue_depth",
            "Assignments decided and waiting for an EM to take them.",
            value=sum(len(core.queue) for core, _ in schedulers),
        )
        yield GaugeMetricFamily(
            "spider_scheduler_execution_managers",
            "EMs that heartbeat or took work recently (not declared dead).",
            value=sum(ems for ems, _ in counts),
        )
        yield GaugeMetricFamily(
            "spider_scheduler_assignments_in_flight",
            "Assignments handed to EMs and not yet acknowledged as consumed.",
            value=sum(outstanding for _, outstanding in counts),
        )


GAUGES: Final = SchedulerGauges()
prometheus_client.REGISTRY.register(GAUGES)


def collecting(
    core: SchedulerCore, registry: ExecutionManagerRegistry
) -> AbstractContextManager[None]:
    """The scheduler's gauges in the metrics for the block."""
    return GAUGES.schedulers.live((core, registry))
