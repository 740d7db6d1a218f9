"""``GetJobTasks`` over real gRPC, on SQLite and MariaDB: a job's tasks with their states while
it runs, after it ends, and after a storage restart (answered from the database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from spider.client import JobNotFoundError, SpiderClient, TaskListing, TaskPage, open_client
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.rpc import Endpoint
from tests.unit.storage.jobs import diamond, flat

from .conftest import RunningStorage, StorageLauncher
from .test_job_flow import JOBS, run_until_idle, submit

PENDING, READY, RUNNING = TaskState.PENDING, TaskState.READY, TaskState.RUNNING
SUCCEEDED, FAILED, CANCELLED = TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED


@asynccontextmanager
async def catalog_client(storage: RunningStorage) -> AsyncIterator[SpiderClient]:
    async with open_client(Endpoint("127.0.0.1", storage.port)) as client:
        yield client


async def every_task(client: SpiderClient, job_id: int, page_size: int = 1000) -> TaskPage:
    """All pages of the job's tasks, joined into one."""
    tasks: list[TaskListing] = []
    token = None
    while True:
        page = await client.get_job_tasks(job_id, page_size=page_size, page_token=token)
        tasks.extend(page.tasks)
        token = page.next_page_token
        if token is None:
            return attrs.evolve(page, tasks=tuple(tasks))


def states(page: TaskPage) -> list[TaskState | None]:
    return [task.state for task in page.tasks]


async def test_a_running_job_lists_live_states_then_records_that_outlive_a_restart(
    launcher: StorageLauncher,
) -> None:
    graph = diamond(retries=1)
    async with launcher.run() as storage, catalog_client(storage) as client:
        job_id = await submit(storage, graph, [1, 2])
        before_start = await every_task(client, job_id)
        assert (before_start.job_state, before_start.task_count) == (JobState.READY, 4)
        assert states(before_start) == [READY, PENDING, PENDING, PENDING]
        assert [task.parents for task in before_start.tasks] == [(), (0,), (0,), (1, 2)]
        assert {(t.package, t.task_func) for t in before_start.tasks} == {("test_pkg", "sum")}

        await storage.client.call(JOBS, "StartJob", job_id=job_id)
        em = await storage.em()
        first = storage.client.task_id(0)
        context = await trio.to_thread.run_sync(em.register_instance, job_id, first)
        running = (await every_task(client, job_id)).tasks[0]
        assert (running.state, running.instances, running.running) == (RUNNING, 1, 1)
        assert running.started_at is not None
        assert running.ended_at is None

        await trio.to_thread.run_sync(em.fail, job_id, first, context, "boom\nat line 3")
        retried = (await every_task(client, job_id)).tasks[0]
        assert (retried.state, retried.instances, retried.running) == (READY, 1, 0)
        assert retried.error_summary == "boom"

        await run_until_idle(em, {job_id: graph})
        done = await every_task(client, job_id)
        assert done.job_state is JobState.SUCCEEDED
        assert states(done) == [SUCCEEDED] * 4
        assert [task.instances for task in done.tasks] == [2, 1, 1, 1]
        for task in done.tasks:
            assert task.started_at is not None
            assert task.ended_at is not None
            assert task.started_at <= task.ended_at
        # The join task started only once both of its parents had ended.
        assert (done.tasks[3].started_at or 0) >= max(t.ended_at or 0 for t in done.tasks[1:3])

    async with launcher.run() as restarted, catalog_client(restarted) as client:
        assert await every_task(client, job_id) == done


async def test_a_failed_job_lists_the_failure_and_cancelled_tasks_before_and_after_restart(
    launcher: StorageLauncher,
) -> None:
    graph = flat(3)
    async with launcher.run() as storage, catalog_client(storage) as client:
        job_id = await submit(storage, graph, [1, 2, 3])
        await storage.client.call(JOBS, "StartJob", job_id=job_id)
        em = await storage.em()
        second = storage.client.task_id(1)
        context = await trio.to_thread.run_sync(em.register_instance, job_id, second)
        await trio.to_thread.run_sync(em.fail, job_id, second, context, "ValueError: no")
        ended = await every_task(client, job_id)
        assert ended.job_state is JobState.FAILED
        assert [task.task_id for task in ended.tasks] == [
            TaskId.index(0),
            TaskId.index(1),
            TaskId.index(2),
            TaskId.COMMIT,
            TaskId.CLEANUP,
        ]
        assert states(ended) == [CANCELLED, FAILED, CANCELLED, CANCELLED, CANCELLED]
        failed = ended.tasks[1]
        assert (failed.instances, failed.error_summary) == (1, "ValueError: no")
        assert failed.ended_at is not None

    async with launcher.run() as restarted, catalog_client(restarted) as client:
        stored = await every_task(client, job_id)
    # The regular tasks' records come from the database; what became of the commit and cleanup
    # tasks of a Failed job is not stored.
    assert stored.tasks[:3] == ended.tasks[:3]
    assert states(stored)[3:] == [None, None]


async def test_pages_follow_the_task_index_with_commit_and_cleanup_last(
    storage: RunningStorage,
) -> None:
    graph = flat(5)
    job_id = await submit(storage, graph, [1, 2, 3, 4, 5])
    async with catalog_client(storage) as client:
        pages = []
        token = None
        while True:
            page = await client.get_job_tasks(job_id, page_size=2, page_token=token)
            pages.append([str(task.task_id) for task in page.tasks])
            token = page.next_page_token
            if token is None:
                break
        assert await every_task(client, job_id, page_size=2) == await every_task(client, job_id)
    assert pages == [
        ["Index(0)", "Index(1)"],
        ["Index(2)", "Index(3)"],
        ["Index(4)", "Commit", "Cleanup"],
    ]


async def test_a_cancelled_job_lists_its_unrun_tasks_as_cancelled(
    storage: RunningStorage,
) -> None:
    graph = diamond()
    job_id = await submit(storage, graph, [1, 2])
    await storage.client.call(JOBS, "CancelJob", job_id=job_id)
    async with catalog_client(storage) as client:
        page = await every_task(client, job_id)
    assert page.job_state is JobState.CANCELLED
    assert states(page) == [CANCELLED] * 4
    assert {task.instances for task in page.tasks} == {0}


async def test_an_unknown_job_is_not_found(storage: RunningStorage) -> None:
    async with catalog_client(storage) as client:
        with pytest.raises(JobNotFoundError):
            await client.get_job_tasks(987_654)
        with pytest.raises(JobNotFoundError):
            await client.get_job_tasks(2**64 - 1)


async def test_an_ended_job_is_decoded_once_however_many_pages_are_read(
    storage: RunningStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = flat(6)
    job_id = await submit(storage, graph, [1, 2, 3, 4, 5, 6])
    await storage.client.call(JOBS, "CancelJob", job_id=job_id)
    database = storage.state.persistence.database
    reads = []
    read_graph = database.get_job_tasks

    def counted(job: JobId) -> Any:
        reads.append(job)
        return read_graph(job)

    monkeypatch.setattr(database, "get_job_tasks", counted)
    async with catalog_client(storage) as client:
        first = await every_task(client, job_id, page_size=2)
        again = await every_task(client, job_id, page_size=2)
    assert first == again
    assert states(first)[:6] == [CANCELLED] * 6
    assert reads == [job_id]
