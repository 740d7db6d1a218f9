"""``spider jobs`` and ``spider tasks``: the job catalog (Spider-py's ``spider_py.catalog``
extension of storage; an upstream storage cannot list jobs or tasks). See docs/cli.md."""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from spider.cli._exit import CliExit
from spider.cli._output import Output
from spider.client import (
    JobListing,
    JobState,
    SpiderClient,
    TaskListing,
    TaskState,
    job_document,
    state_name,
    task_document,
    task_name,
)

LISTING_COMMANDS: Final = frozenset({"jobs", "tasks"})
TASK_PAGE_SIZE: Final = 10_000

StateT = TypeVar("StateT", JobState, TaskState)


def add_listing_commands(commands: Any) -> None:
    """Add ``jobs`` and ``tasks`` to the ``spider`` subcommands."""
    jobs = commands.add_parser(
        "jobs",
        help="list jobs, newest first, filtered by state, resource group and age",
        description="List the jobs storage holds, newest first (Spider-py's job catalog; an "
        "upstream storage cannot list jobs). See docs/cli.md.",
    )
    jobs.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only jobs in this state (repeatable): "
        + ", ".join(state.value for state in JobState),
    )
    jobs.add_argument("--group-id", type=int, metavar="N", help="only this resource group's jobs")
    jobs.add_argument(
        "--since",
        metavar="AGE",
        help="only jobs registered within this long: seconds, or a number with s, m, h or d",
    )
    jobs.add_argument(
        "--limit", type=int, default=50, metavar="N", help="the most jobs shown (default 50)"
    )
    tasks = commands.add_parser(
        "tasks",
        help="list a job's tasks with their states, instances, times and last errors",
        description="A job's tasks in index order, then its commit and cleanup tasks, with a "
        "count by state (Spider-py's job catalog). See docs/cli.md.",
    )
    tasks.add_argument("job_id", type=int, metavar="JOB")
    tasks.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only tasks in this state (repeatable): "
        + ", ".join(state.value for state in TaskState),
    )
    tasks.add_argument(
        "--limit", type=int, default=100, metavar="N", help="the most tasks shown (default 100)"
    )


def check_listing_filters(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for a filter that cannot be right, before storage is called."""
    if args.command == "jobs":
        _states(args.state, JobState)
        if args.since is not None:
            _age_seconds(args.since)
    else:
        _states(args.state, TaskState)
    if args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give at least 1")


async def run_listing(client: SpiderClient, args: argparse.Namespace, output: Output) -> CliExit:
    """Run ``jobs`` or ``tasks``."""
    if args.command == "jobs":
        return await _list_jobs(client, args, output)
    return await _list_tasks(client, args, output)


_AGE_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age_seconds(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d`` in seconds; ``ValueError`` otherwise."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _AGE_UNITS else (text, "s")
    try:
        value = float(number) * _AGE_UNITS[unit]
    except ValueError:
        raise ValueError(f"--since {text!r}: give seconds, or a number with s, m, h or d") from None
    if not value > 0:
        raise ValueError(f"--since {text!r}: the age must be positive")
    return value


def _states(names: Sequence[str], kind: type[StateT]) -> list[StateT]:
    """``--state`` values as ``kind`` members, any case; ``ValueError`` naming the choices."""
    by_name = {state.value.lower(): state for state in kind}
    unknown = [name for name in names if name.lower() not in by_name]
    if unknown:
        what = "job" if kind is JobState else "task"
        raise ValueError(
            f"--state {unknown[0]!r} is not a {what} state; choose from "
            + ", ".join(state.value for state in kind)
        )
    return [by_name[name.lower()] for name in names]


async def _list_jobs(client: SpiderClient, args: argparse.Namespace, output: Output) -> CliExit:
    states = _states(args.state, JobState)
    created_after = None if args.since is None else time.time() - _age_seconds(args.since)
    listed: list[JobListing] = []
    token: int | None = None
    while len(listed) < args.limit:
        page = await client.list_jobs(
            states=states,
            resource_group=args.group_id,
            created_after=created_after,
            page_size=min(args.limit - len(listed), 1000),
            page_token=token,
        )
        listed.extend(page.jobs)
        token = page.next_page_token
        if token is None:
            break
    document = {"jobs": [job_document(job) for job in listed], "more": token is not None}
    output.result(document, _jobs_table(listed, more=token is not None))
    return CliExit.OK


def _jobs_table(jobs: Sequence[JobListing], *, more: bool) -> RenderableType:
    table = Table(title_justify="left")
    for column in ("job", "state", "group", "registered", "took", "error"):
        table.add_column(column, justify="right" if column in ("job", "group", "took") else "left")
    for job in jobs:
        took = "" if job.ended_at is None else f"{job.ended_at - job.created_at:.2f} s"
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created_at))
        table.add_row(
            str(job.job_id),
            job.state.value,
            str(job.resource_group_id),
            created,
            took,
            escape(job.error_summary),
        )
    if not jobs:
        table.caption = "no job matches"
    elif more:
        table.caption = f"the {len(jobs)} newest matching jobs; --limit shows more"
    return table


async def _list_tasks(client: SpiderClient, args: argparse.Namespace, output: Output) -> CliExit:
    """Every page of the job's tasks (for the count by state), the matching ones shown."""
    wanted = set(_states(args.state, TaskState))
    counts: collections.Counter[str] = collections.Counter()
    shown: list[TaskListing] = []
    matching = 0
    token: int | None = None
    while True:
        page = await client.get_job_tasks(args.job_id, page_size=TASK_PAGE_SIZE, page_token=token)
        for task in page.tasks:
            counts[state_name(task.state)] += 1
            if not wanted or task.state in wanted:
                matching += 1
                if len(shown) < args.limit:
                    shown.append(task)
        token = page.next_page_token
        if token is None:
            break
    document = {
        "job_id": args.job_id,
        "job_state": page.job_state.value,
        "task_count": page.task_count,
        "counts": dict(counts),
        "tasks": [task_document(task) for task in shown],
        "more": matching > len(shown),
    }
    heading = f"job {args.job_id}: {page.job_state.value}, {page.task_count} task(s): " + ", ".join(
        f"{count} {state}" for state, count in sorted(counts.items())
    )
    output.result(document, Group(heading, _tasks_table(shown, matching)))
    return CliExit.OK


def _tasks_table(tasks: Sequence[TaskListing], matching: int) -> RenderableType:
    table = Table(title_justify="left")
    for column in ("task", "function", "state", "instances", "started", "took", "error"):
        table.add_column(
            column,
            justify="right" if column in ("task", "instances", "took") else "left",
            # A narrow terminal wraps the function and the error rather than cut them.
            overflow="fold",
            no_wrap=column not in ("function", "error"),
        )
    for task in tasks:
        took = (
            f"{task.ended_at - task.started_at:.3f} s"
            if task.started_at is not None and task.ended_at is not None
            else ""
        )
        started = (
            ""
            if task.started_at is None
            else time.strftime("%H:%M:%S", time.localtime(task.started_at))
        )
        instances = (
            f"{task.instances} ({task.running} running)" if task.running else str(task.instances)
        )
        table.add_row(
            task_name(task),
            escape(task.task_func),
            state_name(task.state),
            instances,
            started,
            took,
            escape(task.error_summary),
        )
    if not tasks:
        table.caption = "no task matches"
    elif matching > len(tasks):
        table.caption = f"{len(tasks)} of {matching} matching tasks; --limit shows more"
    return table
