"""The job listing (Spider-py's ``spider_py.catalog`` extension) as the client returns it."""

from __future__ import annotations

import attrs

from spider.client._state import job_state_from_proto
from spider.core.job_state import JobState
from spider.proto.spider_py import catalog as catalog_pb


@attrs.frozen
class JobListing:
    """One job of a listing: no inputs or outputs, the error's first line only."""

    job_id: int
    state: JobState
    resource_group_id: int
    created_at: float
    """Unix seconds."""
    updated_at: float
    ended_at: float | None
    error_summary: str


@attrs.frozen
class JobPage:
    """A page of jobs, newest first; ``next_page_token`` (``None`` on the last page) asks for
    the next one."""

    jobs: tuple[JobListing, ...]
    next_page_token: int | None


def page_from_proto(reply: catalog_pb.ListJobsResponse) -> JobPage:
    return JobPage(
        tuple(
            JobListing(
                job.job_id,
                job_state_from_proto(job.state),
                job.resource_group_id,
                job.created_at,
                job.updated_at,
                job.ended_at or None,
                job.error_summary,
            )
            for job in reply.jobs
        ),
        reply.next_page_token or None,
    )
