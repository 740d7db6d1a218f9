"""JSON documents of what the client reads: one shape for ``spider ... --json`` and the
dashboard's API (docs/cli.md)."""

from __future__ import annotations

from typing import Any

from spider.client._catalog import JobListing, TaskListing
from spider.client._client import ClusterStatus
from spider.core.task_state import TaskState


def status_document(status: ClusterStatus) -> dict[str, Any]:
    """``spider status --json``'s document (and the dashboard's overview)."""
    schedulers = (
        None
        if status.schedulers is None
        else [{"id": s.scheduler_id, "host": s.host, "port": s.port} for s in status.schedulers]
    )
    document: dict[str, Any] = {
        "storage": status.endpoint,
        "reachable": True,
        "session_id": status.session_id,
        "round_trip_ms": round(status.round_trip_ms, 3),
        "schedulers": schedulers,
        "execution_managers": None,
        "queues": None,
        "jobs": None,
        "not_exposed": list(status.not_exposed),
    }
    details = status.details
    if details is None:
        return document
    document["execution_managers"] = {
        "alive": details.alive_execution_managers,
        "dead": details.dead_execution_managers,
        "dead_listed_max": details.dead_execution_managers_listed_max,
        "listed": [
            {
                "id": em.execution_manager_id,
                "ip_address": em.ip_address,
                "alive": em.alive,
                "seconds_since_heartbeat": round(em.seconds_since_heartbeat, 3),
                "running_task_instances": em.running_task_instances,
            }
            for em in details.execution_managers
        ],
    }
    document["queues"] = {
        lane: {"depth": queue.depth, "capacity": queue.capacity}
        for lane, queue in details.lanes.items()
    }
    database = details.database
    document["database"] = {
        "writable": database.writable,
        "problem": database.problem,
        "unwritable_for_sec": round(database.unwritable_for_sec, 3),
        "last_outage_sec": round(database.last_outage_sec, 3),
        "since_last_outage_sec": round(database.since_last_outage_sec, 3),
    }
    document["live_task_instances"] = details.live_task_instances
    document["task_outcomes"] = dict(details.task_outcomes)
    document["jobs"] = {
        "cached": {state.value: count for state, count in details.cached_jobs.items()},
        "terminated_job_retention_sec": details.terminated_job_retention_sec,
        "stored": {state.value: count for state, count in details.stored_jobs.items()},
    }
    return document


def job_document(job: JobListing) -> dict[str, Any]:
    """A job of ``spider jobs --json`` (and of the dashboard's job list)."""
    return {
        "job_id": job.job_id,
        "state": job.state.value,
        "resource_group_id": job.resource_group_id,
        "created_at": job.created_at,
        "ended_at": job.ended_at,
        "error": job.error_summary,
    }


def state_name(state: TaskState | None) -> str:
    """A task state as listings spell it; ``Unknown`` for ``None``."""
    return "Unknown" if state is None else state.value


def task_name(task: TaskListing) -> str:
    """``0``, ``1``, ... for regular tasks; ``commit`` and ``cleanup``."""
    position = task.task_id.position
    return str(position) if position is not None else task.task_id.kind.value.lower()


def task_document(task: TaskListing) -> dict[str, Any]:
    """A task of ``spider tasks --json`` (and of the dashboard's job page)."""
    return {
        "task": task_name(task),
        "function": f"{task.package}::{task.task_func}",
        "parents": list(task.parents),
        "state": state_name(task.state),
        "instances": task.instances,
        "running": task.running,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
        "error": task.error_summary,
    }
