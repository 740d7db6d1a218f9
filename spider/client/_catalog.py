"""The job and task listings (Spider-py's ``spider_py.catalog`` extension) as the client
returns them."""

from __future__ import annotations

import attrs

from spider.client._state import job_state_from_proto
from spider.core.job_state import JobState
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.proto import common as common_pb
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


@attrs.frozen
class TaskListing:
    """One task of a job, as ``SpiderClient.get_job_tasks`` returns it."""

    task_id: TaskId
    package: str
    task_func: str
    parents: tuple[int, ...]
    """The regular tasks whose outputs it reads."""
    state: TaskState | None
    """``None``: unknown (a job that ended before storage kept task records)."""
    instances: int
    """Instances ever registered (retries and duplicates included)."""
    running: int
    """Instances live now."""
    started_at: float | None
    """Unix seconds when the first instance registered."""
    ended_at: float | None
    error_summary: str
    """The first line of the task's last failure; ``spider error`` shows the job's in full."""


@attrs.frozen
class TaskPage:
    """A page of a job's tasks in index order (commit and cleanup last);
    ``next_page_token`` (``None`` on the last page) asks for the next one."""

    job_state: JobState
    task_count: int
    """The job's regular tasks (commit and cleanup not counted)."""
    tasks: tuple[TaskListing, ...]
    next_page_token: int | None


_TASK_STATES = {
    catalog_pb.TaskState.TASK_STATE_PENDING: TaskState.PENDING,
    catalog_pb.TaskState.TASK_STATE_READY: TaskState.READY,
    catalog_pb.TaskState.TASK_STATE_RUNNING: TaskState.RUNNING,
    catalog_pb.TaskState.TASK_STATE_SUCCEEDED: TaskState.SUCCEEDED,
    catalog_pb.TaskState.TASK_STATE_FAILED: TaskState.FAILED,
    catalog_pb.TaskState.TASK_STATE_CANCELLED: TaskState.CANCELLED,
}


def task_page_from_proto(reply: catalog_pb.GetJobTasksResponse) -> TaskPage:
    return TaskPage(
        job_state_from_proto(reply.job_state),
        reply.task_count,
        tuple(
            TaskListing(
                task_id_from_proto(task.task_id),
                task.package,
                task.task_func,
                tuple(task.parents),
                # A state this client does not know (a newer storage) shows as unknown.
                _TASK_STATES.get(task.state),
                task.instances,
                task.running,
                task.started_at or None,
                task.ended_at or None,
                task.error_summary,
            )
            for task in reply.tasks
        ),
        reply.next_page_token or None,
    )


def task_id_from_proto(message: common_pb.TaskId) -> TaskId:
    kind = message.WhichOneof("kind")
    if kind == "commit":
        return TaskId.COMMIT
    if kind == "cleanup":
        return TaskId.CLEANUP
    return TaskId.index(message.index)
