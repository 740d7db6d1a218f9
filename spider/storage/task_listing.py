"""``job_tasks``: a page of a job's tasks for ``GetJobTasks`` (``spider tasks``, the dashboard).

Where each part comes from:

* the graph (functions, parents): the live dataflow while the regular tasks run, else the job's
  stored graph, decoded in a worker thread;
* states, instance counts, times, last errors: the live control blocks while the regular tasks
  run; afterwards the job's task records (``spider.storage.task_records``), from the job cache
  until the job is evicted, then from the database;
* the commit and cleanup tasks: their control blocks while the job is cached; afterwards what
  the job's final state implies (Succeeded ends by the commit task, Cancelled with a cleanup
  task by the cleanup task), else unknown.

A job that ended before storage kept task records (or whose records do not decode) lists its
regular tasks as unknown, except that every regular task of a job past its last task succeeded.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import Final

import attrs

from spider.core.errors import CodecError
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph, TdlContext, decode_task_graph
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.storage.errors import StorageInternalError
from spider.storage.job_control import JobControlBlock
from spider.storage.persistence import Persistence
from spider.storage.task_control import TaskControlBlock
from spider.storage.task_records import TaskRecord, TaskRecordsError, decode_task_records

LOGGER = logging.getLogger("spider.storage.task_listing")

MAX_KEPT_TASKS: Final = 200_000
"""Tasks of ended jobs kept decoded for listings (about 100 MB at the most)."""

_PAST_REGULAR_TASKS: Final = frozenset({JobState.COMMIT_READY, JobState.SUCCEEDED})
"""Job states in which every regular task has succeeded."""


@attrs.frozen
class ListedTask:
    """One task of the listing."""

    task_id: TaskId
    tdl_context: TdlContext
    parents: tuple[int, ...]
    record: TaskRecord | None
    """``None``: the task's state is unknown (see the module docstring)."""


@attrs.frozen
class TaskListingPage:
    """A page of a job's tasks, and where the next page starts."""

    job_state: JobState
    task_count: int
    """Regular tasks in the job."""
    tasks: list[ListedTask]
    next_index: int | None
    """The first regular task of the next page; ``None`` after the last page."""


@attrs.frozen
class _Decoded:
    graph: TaskGraph
    records: list[TaskRecord] | None


@attrs.define(eq=False)
class EndedListings:
    """The decoded graphs and task records of jobs whose regular tasks are over (they no longer
    change), the most recently listed kept up to ``max_tasks`` tasks in all. Paging through a
    big job, or a dashboard refreshing its page, decodes it once: without this each page decoded
    the whole stored graph and records (0.4 s of CPU per page for a 12,000-task job)."""

    max_tasks: int = MAX_KEPT_TASKS
    _entries: collections.OrderedDict[JobId, _Decoded] = attrs.field(
        factory=collections.OrderedDict
    )
    _held: int = 0

    def get(self, job_id: JobId) -> _Decoded | None:
        decoded = self._entries.get(job_id)
        if decoded is not None:
            self._entries.move_to_end(job_id)
        return decoded

    def put(self, job_id: JobId, decoded: _Decoded) -> None:
        if len(decoded.graph) > self.max_tasks:
            return
        self._entries[job_id] = decoded
        self._held += len(decoded.graph)
        while self._held > self.max_tasks:
            _, dropped = self._entries.popitem(last=False)
            self._held -= len(dropped.graph)


async def job_tasks(
    persistence: Persistence,
    jcb: JobControlBlock | None,
    job_id: JobId,
    first: int,
    limit: int,
    ended: EndedListings,
) -> TaskListingPage:
    """Regular tasks ``first`` to ``first + limit - 1`` of the job (``jcb`` if cached), and on
    the page that reaches the end its commit and cleanup tasks. Raises ``JobNotFound``."""
    if jcb is not None and jcb.dataflow is not None:
        dataflow = jcb.dataflow
        page = range(first, min(first + limit, len(dataflow.tasks)))
        records: Sequence[TaskRecord | None] | None = [
            TaskRecord.of(dataflow.tasks[index]) for index in page
        ]
        return _page(jcb.state, dataflow.graph, page, records, jcb)
    decoded = ended.get(job_id)
    if decoded is None:
        stored = await persistence.get_job_tasks(job_id)
        state = jcb.state if jcb is not None else stored.state
        blob = jcb.task_records if jcb is not None and jcb.task_records else stored.task_records
        decoded = await _decode(persistence, job_id, stored.compressed_task_graph, blob)
        ended.put(job_id, decoded)
    else:
        # Still the database's word on whether the job exists (retention may have deleted it)
        # and on its state, which a Cancelled or Failed job keeps but a CommitReady one changes.
        state = jcb.state if jcb is not None else (await persistence.get_job_status(job_id)).state
    graph = decoded.graph
    page = range(first, min(first + limit, len(graph)))
    all_records = decoded.records
    records = None if all_records is None else [all_records[index] for index in page]
    if records is None and state in _PAST_REGULAR_TASKS:
        records = [TaskRecord(TaskState.SUCCEEDED, 0, None, None) for _ in page]
    return _page(state, graph, page, records, jcb)


def _page(
    state: JobState,
    graph: TaskGraph,
    page: range,
    records: Sequence[TaskRecord | None] | None,
    jcb: JobControlBlock | None,
) -> TaskListingPage:
    tasks = [
        ListedTask(
            TaskId.index(index),
            graph.task(index).tdl_context,
            graph.parents(index),
            None if records is None else records[position],
        )
        for position, index in enumerate(page)
    ]
    at_end = page.stop >= len(graph)
    if at_end:
        tasks.extend(_termination_tasks(state, graph, jcb))
    return TaskListingPage(state, len(graph), tasks, None if at_end else page.stop)


def _termination_tasks(
    state: JobState, graph: TaskGraph, jcb: JobControlBlock | None
) -> list[ListedTask]:
    listed = []
    for task_id, descriptor, cached, implied_by in (
        (TaskId.COMMIT, graph.commit_task, jcb.commit if jcb else None, JobState.SUCCEEDED),
        (TaskId.CLEANUP, graph.cleanup_task, jcb.cleanup if jcb else None, JobState.CANCELLED),
    ):
        if descriptor is None:
            continue
        listed.append(
            ListedTask(
                task_id,
                descriptor.tdl_context,
                (),
                _termination_record(cached, state is implied_by),
            )
        )
    return listed


def _termination_record(cached: TaskControlBlock | None, implied: bool) -> TaskRecord | None:
    if cached is not None:
        return TaskRecord.of(cached)
    if implied:
        return TaskRecord(TaskState.SUCCEEDED, 0, None, None)
    return None


async def _decode(
    persistence: Persistence, job_id: JobId, compressed_graph: bytes, records: bytes | None
) -> _Decoded:
    graph = await _decode_graph(persistence, job_id, compressed_graph)
    decoded = await _decode_records(persistence, job_id, records) if records else None
    if decoded is not None and len(decoded) != len(graph):
        LOGGER.warning(
            "job %s: %d task records for %d tasks; its tasks are listed as unknown",
            job_id,
            len(decoded),
            len(graph),
        )
        decoded = None
    return _Decoded(graph, decoded)


async def _decode_graph(persistence: Persistence, job_id: JobId, data: bytes) -> TaskGraph:
    try:
        return await persistence.offload(decode_task_graph, data)
    except CodecError as exc:
        raise StorageInternalError(
            f"job {job_id}: its stored task graph, accepted when it was registered, does not "
            f"decode: {exc}"
        ) from exc


async def _decode_records(
    persistence: Persistence, job_id: JobId, data: bytes
) -> list[TaskRecord] | None:
    try:
        return await persistence.offload(decode_task_records, data)
    except TaskRecordsError as exc:
        LOGGER.warning("job %s: %s; its tasks are listed as unknown", job_id, exc)
        return None
