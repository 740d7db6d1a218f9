"""``JobCatalogService``: Spider-py's job catalog extension (``spider_py.catalog``), not
Spider's protocol. ``ListJobs`` finds jobs in the database by state, resource group and time,
newest first, a page at a time (docs/cli.md, ``spider jobs``); ``GetJobTasks`` reads a job's
tasks and their states (``spider tasks``; ``spider.storage.task_listing`` says where each part
comes from). Every proto message is built or read in the converters at the bottom."""

from __future__ import annotations

from typing import Final

from spider.core.ids import JobId, ResourceGroupId
from spider.core.task_state import TaskState
from spider.proto.spider_py import catalog as catalog_pb
from spider.rpc import InvalidArgumentError
from spider.storage.db import JobQuery, JobSummary
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._group_gate import GroupGate
from spider.storage.service._unpack import (
    job_id_from_proto,
    job_state_from_proto,
    job_state_to_proto,
    stored_id,
    task_id_to_proto,
)
from spider.storage.state import StorageState
from spider.storage.task_listing import EndedListings, ListedTask, TaskListingPage, job_tasks

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
DEFAULT_TASK_PAGE_SIZE: Final = 1000
MAX_TASK_PAGE_SIZE: Final = 10_000
LATEST_TIME: Final = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last time the databases' time columns hold."""


class JobCatalogService(catalog_pb.JobCatalogServiceBase):
    """``ListJobs``: the database's jobs, filtered and paged; ``GetJobTasks``: one job's
    tasks, paged."""

    def __init__(self, state: StorageState, gate: GroupGate) -> None:
        self._state = state
        self._gate = gate
        self._ended = EndedListings()

    async def list_jobs(self, request: catalog_pb.ListJobsRequest) -> catalog_pb.ListJobsResponse:
        """A page of matching jobs, newest first, and the token of the next page."""
        query = query_from_proto(request)
        with answering_storage_errors("ListJobs"):
            group = await self._gate.admit_listing(query.resource_group_id)
            # One more than the page: whether there is a next page, without a count.
            page = await self._state.persistence.list_jobs(
                JobQuery(
                    query.states,
                    group,
                    query.created_after,
                    query.created_before,
                    query.below_id,
                    query.limit + 1,
                )
            )
        more = len(page) > query.limit
        jobs = page[: query.limit]
        return catalog_pb.ListJobsResponse(
            jobs=[summary_to_proto(job) for job in jobs],
            next_page_token=jobs[-1].id if more else 0,
        )

    async def get_job_tasks(
        self, request: catalog_pb.GetJobTasksRequest
    ) -> catalog_pb.GetJobTasksResponse:
        """A page of the job's tasks in index order (commit and cleanup last)."""
        job_id = job_id_from_proto(request.job_id)
        first, limit = task_page_from_proto(request)
        with answering_storage_errors("GetJobTasks"):
            await self._gate.admit_job(job_id)
            page = await job_tasks(
                self._state.persistence,
                self._state.lifecycle.cache.get(job_id),
                job_id,
                first,
                limit,
                self._ended,
            )
        return task_page_to_proto(page)


# --- converters: the only code here that touches proto messages --------------------------------


def query_from_proto(request: catalog_pb.ListJobsRequest) -> JobQuery:
    """The query a request asks for; ``InvalidArgumentError`` for a page size over the cap."""
    if request.page_size > MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            f"page_size {request.page_size} is over the maximum of {MAX_PAGE_SIZE}"
        )
    group = (
        ResourceGroupId(stored_id(request.resource_group_id, "resource_group_id"))
        if request.HasField("resource_group_id")
        else None
    )
    for name in ("created_after", "created_before"):
        value = getattr(request, name)
        if not 0.0 <= value <= LATEST_TIME:  # also NaN
            raise InvalidArgumentError(
                f"{name} {value!r} is not a time: give Unix seconds from 0 to {LATEST_TIME:.0f} "
                "(0: no bound)"
            )
    token = request.page_token
    return JobQuery(
        states=frozenset(job_state_from_proto(state) for state in request.states),
        resource_group_id=group,
        created_after=request.created_after or None,
        created_before=request.created_before or None,
        below_id=JobId(stored_id(token, "page_token")) if token else None,
        limit=request.page_size or DEFAULT_PAGE_SIZE,
    )


def summary_to_proto(job: JobSummary) -> catalog_pb.JobSummary:
    return catalog_pb.JobSummary(
        job_id=job.id,
        state=job_state_to_proto(job.state),
        resource_group_id=job.resource_group_id,
        created_at=job.created_at,
        updated_at=job.updated_at,
        ended_at=job.ended_at or 0.0,
        error_summary=job.error_summary,
    )


def task_page_from_proto(request: catalog_pb.GetJobTasksRequest) -> tuple[int, int]:
    """The first task and the page size a request asks for."""
    if request.page_size > MAX_TASK_PAGE_SIZE:
        raise InvalidArgumentError(
            f"page_size {request.page_size} is over the maximum of {MAX_TASK_PAGE_SIZE}"
        )
    first = stored_id(request.page_token, "page_token")
    return first, request.page_size or DEFAULT_TASK_PAGE_SIZE


_TASK_STATES: Final = {
    TaskState.PENDING: catalog_pb.TaskState.TASK_STATE_PENDING,
    TaskState.READY: catalog_pb.TaskState.TASK_STATE_READY,
    TaskState.RUNNING: catalog_pb.TaskState.TASK_STATE_RUNNING,
    TaskState.SUCCEEDED: catalog_pb.TaskState.TASK_STATE_SUCCEEDED,
    TaskState.FAILED: catalog_pb.TaskState.TASK_STATE_FAILED,
    TaskState.CANCELLED: catalog_pb.TaskState.TASK_STATE_CANCELLED,
}


def task_page_to_proto(page: TaskListingPage) -> catalog_pb.GetJobTasksResponse:
    return catalog_pb.GetJobTasksResponse(
        job_state=job_state_to_proto(page.job_state),
        task_count=page.task_count,
        tasks=[listed_task_to_proto(task) for task in page.tasks],
        next_page_token=page.next_index or 0,
    )


def listed_task_to_proto(task: ListedTask) -> catalog_pb.TaskSummary:
    message = catalog_pb.TaskSummary(
        task_id=task_id_to_proto(task.task_id),
        package=task.tdl_context.package,
        task_func=task.tdl_context.task_func,
        parents=task.parents,
    )
    record = task.record
    if record is not None:
        message.state = _TASK_STATES[record.state]
        message.instances = record.instances
        message.running = record.running
        message.started_at = record.started_at or 0.0
        message.ended_at = record.ended_at or 0.0
        message.error_summary = record.error
    return message
