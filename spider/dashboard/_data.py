"""``DashboardData``: what the dashboard's pages show, read from storage through the client.

The overview is sampled in the background every few seconds (one ``GetClusterStatus`` and
``GetSession``), so however many browsers poll the dashboard, storage answers one status call
per interval; the job list and a job's tasks are read when a page asks for them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import attrs
import trio

from spider.client import (
    ClientError,
    JobState,
    SpiderClient,
    SubmittedJob,
    TaskListing,
    job_document,
    status_document,
    task_document,
)
from spider.core.ids import JobId
from spider.dashboard._throughput import Throughput

LOGGER: Final = logging.getLogger("spider.dashboard")

SAMPLE_INTERVAL_SEC: Final = 2.0
"""How often the overview (and the throughput plot) is read from storage."""
MAX_DRAWN_TASKS: Final = 2000
"""The most tasks a job page reads and draws; a bigger job's page says how many it left out."""
TASK_PAGE_SIZE: Final = 1000
MAX_LISTED_JOBS: Final = 500


@attrs.define(eq=False)
class DashboardData:
    """The dashboard's reads of one storage service."""

    client: SpiderClient
    throughput: Throughput = attrs.field(factory=Throughput)
    interval_sec: float = SAMPLE_INTERVAL_SEC
    _status: dict[str, Any] | None = None
    _problem: str | None = None
    _sampled_at: float | None = None

    async def sample_forever(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read the overview every ``interval_sec`` until cancelled; ``task_status`` is told once
        the first reading is done (or failed)."""
        await self.sample()
        task_status.started()
        while True:
            await trio.sleep(self.interval_sec)
            await self.sample()

    async def sample(self) -> None:
        """One reading of the cluster status; a failure is shown, not raised."""
        try:
            with trio.fail_after(max(self.interval_sec, 5.0)):
                status = await self.client.cluster_status()
        except (ClientError, trio.TooSlowError) as error:
            if self._problem is None:
                LOGGER.warning("the dashboard cannot read the cluster status: %s", error)
            self._problem = str(error) or "storage did not answer in time"
            return
        now = time.time()
        self._status = status_document(status)
        self._problem = None
        self._sampled_at = now
        if status.details is not None:
            self.throughput.add(now, sum(status.details.task_outcomes.values()))

    @property
    def problem(self) -> str | None:
        """Why the last reading failed; ``None`` once one succeeded since."""
        return self._problem

    def overview(self) -> dict[str, Any]:
        """The last reading, what went wrong since if anything, and the throughput points."""
        return {
            "storage": str(self.client.endpoint),
            "status": self._status,
            "problem": self._problem,
            "sampled_at": self._sampled_at,
            "throughput": {
                "interval_sec": self.interval_sec,
                "window_sec": self.throughput.window_sec,
                "points": [[round(at, 3), round(rate, 3)] for at, rate in self.throughput.points()],
            },
        }

    async def jobs(
        self,
        states: list[JobState],
        resource_group: int | None,
        limit: int,
        page_token: int | None,
    ) -> dict[str, Any]:
        """A page of the job catalog, newest first."""
        page = await self.client.list_jobs(
            states=states,
            resource_group=resource_group,
            page_size=min(limit, MAX_LISTED_JOBS),
            page_token=page_token,
        )
        return {
            "jobs": [job_document(job) for job in page.jobs],
            "next_page_token": page.next_page_token,
        }

    async def job(self, job_id: int) -> dict[str, Any]:
        """The job's state, its first ``MAX_DRAWN_TASKS`` tasks and, if it failed, its error."""
        tasks: list[TaskListing] = []
        token: int | None = None
        while True:
            page = await self.client.get_job_tasks(
                job_id, page_size=TASK_PAGE_SIZE, page_token=token
            )
            tasks.extend(page.tasks)
            token = page.next_page_token
            if token is None or len(tasks) >= MAX_DRAWN_TASKS:
                break
        error = None
        if page.job_state is JobState.FAILED:
            error = await self.client.error(SubmittedJob(JobId(job_id)))
        return {
            "job_id": job_id,
            "state": page.job_state.value,
            "task_count": page.task_count,
            "tasks": [task_document(task) for task in tasks],
            "complete": token is None,
            "error": error,
        }
