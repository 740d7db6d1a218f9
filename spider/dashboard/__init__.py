"""The web dashboard: the cluster, its jobs and each job's task graph, in a browser
(docs/dashboard.md).

``spider dashboard`` serves it for any storage; the embedded cluster serves it on its metrics
port. It is one static page whose script draws every view from a small JSON API: nothing to
build, nothing fetched from outside the process.
"""

from __future__ import annotations

from contextlib import nullcontext

import trio

from spider.client import ClientConfig, SpiderClient, open_client
from spider.dashboard._data import DashboardData
from spider.dashboard._pages import dashboard_pages
from spider.dashboard._throughput import Throughput
from spider.observability import Readiness, Route
from spider.rpc import Endpoint

__all__ = [
    "DashboardData",
    "Throughput",
    "dashboard_pages",
    "run_dashboard",
    "run_dashboard_of",
]


async def run_dashboard(
    client: SpiderClient,
    *,
    readiness: Readiness | None = None,
    task_status: trio.TaskStatus[dict[str, Route]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sample the cluster's status until cancelled; ``task_status`` gets the dashboard's routes
    (for ``serve_http``'s ``pages``) once the first sample is taken. With ``readiness``, the
    condition "storage" says whether the last sample reached storage."""
    data = DashboardData(client)
    with readiness.check("storage", lambda: data.problem) if readiness else nullcontext():
        async with trio.open_nursery() as nursery:
            await nursery.start(data.sample_forever)
            task_status.started(dashboard_pages(data, trio.lowlevel.current_trio_token()))


async def run_dashboard_of(
    storage: Endpoint,
    config: ClientConfig,
    *,
    task_status: trio.TaskStatus[dict[str, Route]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run_dashboard`` with a client of its own to ``storage``, open while it runs."""
    async with open_client(storage, config) as client:
        await run_dashboard(client, task_status=task_status)
