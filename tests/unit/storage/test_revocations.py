"""Revocations: the running instances storage no longer wants, as each EM's long poll sees them.

A cancel, a job failure and a twin's success revoke the other live instances (never the one
reporting); acknowledging a revision, a late report, a dead EM and the hard deadline forget them.
Every timing runs on Trio's mock clock (the test config: hard timeouts 2 s, grace 1 s).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId, JobId, SessionId, TaskInstanceId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.storage import CacheStale, StaleSession, StorageState
from spider.storage.instance_gc import sweep_task_instances
from spider.storage.revocations import RevocationAnswer

from .fake_database import FakeDatabase
from .jobs import (
    FAST_TIMEOUTS,
    create_state,
    drain,
    frame_of,
    new_group,
    submission,
    summing_task,
    termination,
)

WAIT = 30.0


def fast_graph(size: int, *, instances: int = 1, cleanup: bool = False) -> TaskGraph:
    graph = TaskGraph()
    for _ in range(size):
        graph.insert_task(summing_task(1, 1, instances=instances, timeouts=FAST_TIMEOUTS))
    if cleanup:
        graph.cleanup_task = termination("cleanup")
    return graph


async def started(
    graph: TaskGraph, database: FakeDatabase | None = None
) -> tuple[StorageState, JobId]:
    database = database or FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, [1] * len(graph))
    )
    await state.lifecycle.start_job(job_id)
    await drain(state)
    return state, job_id


async def em(state: StorageState) -> ExecutionManagerId:
    return (await state.register_execution_manager("10.0.0.1")).execution_manager_id


async def run(
    state: StorageState, job_id: JobId, index: int, worker: ExecutionManagerId
) -> TaskInstanceId:
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(index), worker, state.session
    )
    return context.task_instance_id


async def poll(
    state: StorageState, worker: ExecutionManagerId, known: int = 0, wait: float = 0.0
) -> RevocationAnswer:
    return await state.wait_revoked_instances(worker, state.session, known, wait)


async def test_a_cancel_revokes_each_ems_running_instances(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(3))
    one, two = await em(state), await em(state)
    first = await run(state, job_id, 0, one)
    second = await run(state, job_id, 1, one)
    third = await run(state, job_id, 2, two)
    assert (await poll(state, one)).instance_ids == ()
    await state.lifecycle.cancel_job(job_id)
    assert sorted((await poll(state, one, wait=WAIT)).instance_ids) == [first, second]
    assert (await poll(state, two, wait=WAIT)).instance_ids == (third,)
    assert trio.current_time() == 0  # answered at once: there were revocations
    assert len(state.lifecycle.pool) == 0


async def test_the_long_poll_answers_when_a_revocation_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    answers: list[RevocationAnswer] = []

    async def waiter() -> None:
        answers.append(await poll(state, worker, wait=WAIT))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(5)
        assert answers == []
        await state.lifecycle.cancel_job(job_id)
    assert answers[0].instance_ids == (instance,)
    assert trio.current_time() == 5


async def test_the_long_poll_answers_nothing_after_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    other = await em(state)
    await run(state, job_id, 0, other)
    answers: list[RevocationAnswer] = []

    async def waiter() -> None:
        answers.append(await poll(state, worker, wait=WAIT))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        await state.lifecycle.cancel_job(job_id)  # another EM's instance: not this poll's
    assert answers[0].instance_ids == ()
    assert trio.current_time() == WAIT


async def test_acknowledging_a_revision_forgets_the_revocations_up_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    await state.lifecycle.cancel_job(job_id)
    answer = await poll(state, worker)
    assert answer.instance_ids == (instance,)
    # The answer was lost: polling with the old revision gets it again.
    assert (await poll(state, worker)).instance_ids == (instance,)
    assert (await poll(state, worker, known=answer.revision)).instance_ids == ()
    assert state.lifecycle.pool.revocations.pending(worker) == []
    assert len(state.lifecycle.pool.revocations) == 0


async def test_a_revision_of_another_session_counts_as_zero(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    await state.lifecycle.cancel_job(job_id)
    stale = SessionId(state.session + 1)
    answer = await state.wait_revoked_instances(worker, stale, 1_000, 0)
    assert answer.instance_ids == (instance,)


async def test_a_job_failure_revokes_the_other_instances_not_the_failed_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(2))
    worker = await em(state)
    failing = await run(state, job_id, 0, worker)
    other = await run(state, job_id, 1, worker)
    await state.lifecycle.report_task_failure(
        job_id, TaskId.index(0), failing, state.session, "boom"
    )
    assert await state.lifecycle.get_job_state(job_id) is JobState.FAILED
    assert (await poll(state, worker)).instance_ids == (other,)


async def test_a_twins_success_revokes_the_soft_timeout_duplicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(2, instances=2))
    slow_em, fast_em = await em(state), await em(state)
    slow = await run(state, job_id, 0, slow_em)
    fast = await run(state, job_id, 0, fast_em)
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(0), fast, state.session, frame_of(1)
    )
    assert (await poll(state, slow_em)).instance_ids == (slow,)
    assert (await poll(state, fast_em)).instance_ids == ()


async def test_successes_and_retried_failures_revoke_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(2))
    worker = await em(state)
    for index in range(2):
        instance = await run(state, job_id, index, worker)
        await state.lifecycle.report_task_success(
            job_id, TaskId.index(index), instance, state.session, frame_of(1)
        )
    assert await state.lifecycle.get_job_state(job_id) is JobState.SUCCEEDED
    assert len(state.lifecycle.pool.revocations) == 0


async def test_a_cancel_into_cleanup_revokes_the_regular_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1, cleanup=True))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    assert await state.lifecycle.cancel_job(job_id) is JobState.CLEANUP_READY
    assert (await poll(state, worker)).instance_ids == (instance,)


@pytest.mark.parametrize("outcome", ["success", "failure"])
async def test_a_late_report_of_a_revoked_instance_forgets_it(
    autojump_clock: trio.testing.MockClock, outcome: str
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    await state.lifecycle.cancel_job(job_id)
    lifecycle = state.lifecycle
    late = (
        lifecycle.report_task_success(job_id, TaskId.index(0), instance, state.session, frame_of(1))
        if outcome == "success"
        else lifecycle.report_task_failure(job_id, TaskId.index(0), instance, state.session, "x")
    )
    with pytest.raises(CacheStale):
        await late
    assert (await poll(state, worker)).instance_ids == ()


async def test_revocations_of_a_dead_em_are_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state, job_id = await started(fast_graph(2), database)
    doomed, survivor = await em(state), await em(state)
    await run(state, job_id, 0, doomed)
    kept = await run(state, job_id, 1, survivor)
    await state.lifecycle.cancel_job(job_id)
    await trio.sleep(0.5)
    await state.update_execution_manager_heartbeat(survivor)
    database.ems[doomed].last_heartbeat_at = trio.current_time() - 5.5
    assert (await sweep_task_instances(state.lifecycle)).dead_execution_managers == 1
    assert state.lifecycle.pool.revocations.pending(doomed) == []
    assert state.lifecycle.pool.revocations.pending(survivor) == [kept]


async def test_revocations_are_forgotten_past_the_instances_hard_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started(fast_graph(1))
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    await state.lifecycle.cancel_job(job_id)
    await trio.sleep(2.99)  # hard timeout 2 s + grace 1 s not yet over
    await state.update_execution_manager_heartbeat(worker)
    await sweep_task_instances(state.lifecycle)
    assert state.lifecycle.pool.revocations.pending(worker) == [instance]
    await trio.sleep(0.01)
    await state.update_execution_manager_heartbeat(worker)
    await sweep_task_instances(state.lifecycle)
    assert state.lifecycle.pool.revocations.pending(worker) == []


async def test_a_restarted_storage_has_no_revocations_and_fences_the_old_instances(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Revocations live in memory: after a restart the earlier process's instances are not
    revoked, they run to their end and their reports are refused by the session check."""
    database = FakeDatabase()
    state, job_id = await started(fast_graph(1), database)
    worker = await em(state)
    instance = await run(state, job_id, 0, worker)
    old_session = state.session
    restarted = await create_state(database)
    await restarted.lifecycle.cancel_job(job_id)
    answer = await restarted.wait_revoked_instances(worker, old_session, 1, 0)
    assert answer.instance_ids == ()
    with pytest.raises(StaleSession):
        await restarted.lifecycle.report_task_success(
            job_id, TaskId.index(0), instance, old_session, frame_of(1)
        )
