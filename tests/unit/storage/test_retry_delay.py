"""A failed task with retries left waits out its retry delay before storage offers it again.

On Trio's mock clock, with the retry timer running (``open_storage_state``) and the jitter
pinned (``uniform`` answers 0, so each wait is half of its longest).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio
import trio.testing

from spider.core.ids import JobId
from spider.core.task_graph import (
    ExecutionPolicy,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
)
from spider.core.task_id import TaskId
from spider.storage import Lane, StorageState, open_storage_state
from spider.storage.retry_timer import RetryTimer

from .fake_database import FakeDatabase
from .jobs import FAST_TIMEOUTS, INT, drain, new_group, storage_config, submission

TASK = TaskId.index(0)


def one_task(delay: RetryDelay, retries: int = 3) -> TaskGraph:
    graph = TaskGraph()
    graph.insert_task(
        TaskDescriptor(
            TdlContext("test_pkg", "sum"),
            [INT],
            [INT],
            execution_policy=ExecutionPolicy(retries, 1, FAST_TIMEOUTS, delay),
        )
    )
    return graph


@contextlib.asynccontextmanager
async def running(delay: RetryDelay) -> AsyncIterator[tuple[StorageState, JobId]]:
    """A started one-task job with ``delay`` on a storage whose retry timer runs; its task was
    taken from the lane."""
    database = FakeDatabase()
    async with open_storage_state(
        storage_config(), database, clock=trio.current_time, threaded=False
    ) as state:
        state.lifecycle.uniform = lambda: 0.0
        job_id = await state.lifecycle.register_job(
            new_group(database), *submission(one_task(delay), [1])
        )
        await state.lifecycle.start_job(job_id)
        assert [entry.task_id for entry in await drain(state)] == [TASK]
        yield state, job_id


async def fail_once(state: StorageState, job_id: JobId) -> None:
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    context = await state.lifecycle.register_task_instance(job_id, TASK, em, state.session)
    await state.lifecycle.report_task_failure(
        job_id, TASK, context.task_instance_id, state.session, "dependency down"
    )


async def seconds_until_offered(state: StorageState) -> float:
    began = trio.current_time()
    batch = await state.poll_ready_tasks(Lane.TASK, 10, 600_000)
    assert [entry.task_id for entry in batch.tasks] == [TASK]
    return trio.current_time() - began


async def test_each_retry_waits_longer_up_to_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(RetryDelay(1_000, 3_000)) as (state, job_id):
        waits = []
        for _ in range(3):
            await fail_once(state, job_id)
            assert await drain(state) == []  # not offered at once
            waits.append(await seconds_until_offered(state))
    # Half of 1 s, 2 s, then 4 s capped at 3 s (uniform() is 0).
    assert [round(wait, 3) for wait in waits] == [0.5, 1.0, 1.5]


async def test_a_resend_of_ready_work_does_not_cut_the_wait_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(RetryDelay(10_000, 10_000)) as (state, job_id):
        await fail_once(state, job_id)
        await trio.sleep(1)
        assert state.lifecycle.resend_ready_work() == 0  # as when a new scheduler registers
        assert await drain(state) == []
        assert round(await seconds_until_offered(state), 3) == 4.0


async def test_a_task_of_a_job_cancelled_meanwhile_is_not_offered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(RetryDelay(2_000, 2_000)) as (state, job_id):
        await fail_once(state, job_id)
        await state.lifecycle.cancel_job(job_id)
        await trio.sleep(5)
        assert await drain(state) == []
        assert len(state.lifecycle.retry_timer) == 0


async def test_a_zero_delay_retries_at_once_as_spider_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(RetryDelay(0, 0)) as (state, job_id):
        await fail_once(state, job_id)
        assert [entry.task_id for entry in await drain(state)] == [TASK]


async def test_the_timer_wakes_for_an_entry_earlier_than_the_one_it_sleeps_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timer = RetryTimer()
    fired: list[tuple[float, JobId]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run, lambda job, _task: fired.append((trio.current_time(), job)))
        start = trio.current_time()
        timer.schedule(start + 5, JobId(1), TASK)
        await trio.sleep(1)
        timer.schedule(start + 2, JobId(2), TASK)
        timer.schedule(start + 2, JobId(3), TASK)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert [(round(at - start, 3), job) for at, job in fired] == [(2, 2), (2, 3), (5, 1)]
