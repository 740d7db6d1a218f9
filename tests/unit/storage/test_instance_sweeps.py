"""Sweeps of live task instances: dead EMs, soft timeouts, storage's hard timeout, the GC loop.

Mirrors upstream's ``task_instance_pool.rs`` GC tests (terminated tasks dropped, soft timeouts
re-enqueued once and kept, a dead EM's instances removed and re-enqueued with no retry used,
terminated tasks of a dead EM not re-enqueued, all combined) and adds the storage-side hard
timeout. Every timing runs on Trio's mock clock; the test config sweeps every second, declares
an EM dead after 5 s without heartbeat, and gives hard timeouts (2 s) a 1 s grace.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId, JobId, TaskInstanceId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.storage import (
    CacheStale,
    EmDead,
    Lane,
    StaleReason,
    StorageState,
    StorageUnavailable,
    open_storage_state,
)
from spider.storage.instance_gc import SweepReport, sweep_task_instances

from .fake_database import FakeDatabase
from .jobs import (
    FAST_TIMEOUTS,
    create_state,
    diamond,
    drain,
    frame_of,
    new_group,
    storage_config,
    submission,
    summing_task,
)


def fast_graph(size: int, *, retries: int = 0, instances: int = 1) -> TaskGraph:
    graph = TaskGraph()
    for _ in range(size):
        graph.insert_task(
            summing_task(1, 1, retries=retries, instances=instances, timeouts=FAST_TIMEOUTS)
        )
    return graph


async def started(
    graph: TaskGraph, database: FakeDatabase | None = None
) -> tuple[StorageState, FakeDatabase, JobId]:
    database = database or FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, [1] * len(graph))
    )
    await state.lifecycle.start_job(job_id)
    await drain(state)
    return state, database, job_id


async def em(state: StorageState) -> ExecutionManagerId:
    return (await state.register_execution_manager("10.0.0.1")).execution_manager_id


def task_state(state: StorageState, job_id: JobId, index: int) -> TaskState:
    jcb = state.lifecycle.cache.get(job_id)
    assert jcb is not None
    assert jcb.dataflow is not None
    return jcb.dataflow.tasks[index].state


async def test_a_sweep_keeps_healthy_instances(autojump_clock: trio.testing.MockClock) -> None:
    state, _, job_id = await started(fast_graph(2))
    worker = await em(state)
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
    assert await sweep_task_instances(state.lifecycle) == SweepReport()
    assert len(state.lifecycle.pool) == 1
    assert await drain(state) == []


async def test_a_sweep_drops_instances_of_terminated_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _, job_id = await started(fast_graph(2))
    worker = await em(state)
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), worker, state.session
    )
    # Bypass the eager removal to check the sweep's own safety net.
    jcb = state.lifecycle.cache.get(job_id)
    assert jcb is not None
    assert jcb.dataflow is not None
    jcb.dataflow.tasks[0].finish(TaskState.CANCELLED)
    assert context.task_instance_id in state.lifecycle.pool
    await trio.sleep(100)  # far past every timeout: a dropped entry must not be re-enqueued
    await state.update_execution_manager_heartbeat(worker)
    assert await sweep_task_instances(state.lifecycle) == SweepReport()
    assert len(state.lifecycle.pool) == 0
    assert await drain(state) == []


async def test_soft_timed_out_instances_are_re_enqueued_once_and_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _, job_id = await started(fast_graph(3, instances=2))
    worker = await em(state)
    for index in range(3):
        await state.lifecycle.register_task_instance(
            job_id, TaskId.index(index), worker, state.session
        )
    await trio.sleep(0.99)
    assert (await sweep_task_instances(state.lifecycle)).soft_timeouts == 0
    await trio.sleep(0.01)
    assert (await sweep_task_instances(state.lifecycle)).soft_timeouts == 3
    assert [e.task_id for e in await drain(state)] == [TaskId.index(n) for n in range(3)]
    assert len(state.lifecycle.pool) == 3
    assert (await sweep_task_instances(state.lifecycle)).soft_timeouts == 0
    assert await drain(state) == []
    # The duplicate dispatch may run as a second instance (max_num_instances = 2).
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)


async def test_a_dead_ems_instances_are_removed_and_re_enqueued_without_using_a_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(3, retries=1))
    doomed = await em(state)
    survivor = await em(state)
    for index in range(2):
        await state.lifecycle.register_task_instance(
            job_id, TaskId.index(index), doomed, state.session
        )
    await state.lifecycle.register_task_instance(job_id, TaskId.index(2), survivor, state.session)
    await trio.sleep(0.9)
    await state.update_execution_manager_heartbeat(survivor)
    database.ems[doomed].last_heartbeat_at = trio.current_time() - 5.5
    report = await sweep_task_instances(state.lifecycle)
    assert (report.dead_execution_managers, report.removed_for_dead_em) == (1, 2)
    assert [e.task_id for e in await drain(state)] == [TaskId.index(0), TaskId.index(1)]
    assert [task_state(state, job_id, n) for n in range(3)] == [
        TaskState.READY,
        TaskState.READY,
        TaskState.RUNNING,
    ]
    jcb = state.lifecycle.cache.get(job_id)
    assert jcb is not None
    assert jcb.dataflow is not None
    assert [tcb.retries_left for tcb in jcb.dataflow.tasks] == [1, 1, 1]
    assert len(state.lifecycle.pool) == 1
    with pytest.raises(EmDead):
        await state.update_execution_manager_heartbeat(doomed)
    with pytest.raises(EmDead):
        await state.lifecycle.register_task_instance(job_id, TaskId.index(0), doomed, state.session)


async def test_terminated_tasks_of_a_dead_em_are_not_re_enqueued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _, job_id = await started(fast_graph(2))
    doomed = await em(state)
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), doomed, state.session
    )
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(0), context.task_instance_id, state.session, frame_of(1)
    )
    await state.lifecycle.register_task_instance(job_id, TaskId.index(1), doomed, state.session)
    await state.lifecycle.cancel_job(job_id)
    await trio.sleep(6)
    report = await sweep_task_instances(state.lifecycle)
    assert (report.dead_execution_managers, report.removed_for_dead_em) == (1, 0)
    assert await drain(state) == []


async def test_storage_enforces_the_hard_timeout_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(1, retries=1))
    worker = await em(state)
    first = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), worker, state.session
    )
    await trio.sleep(2.99)  # hard timeout 2 s + grace 1 s not yet over
    await state.update_execution_manager_heartbeat(worker)
    assert (await sweep_task_instances(state.lifecycle)).hard_timeouts == 0
    await trio.sleep(0.01)
    assert (await sweep_task_instances(state.lifecycle)).hard_timeouts == 1
    assert [e.task_id for e in await drain(state)] == [TaskId.index(0)]
    with pytest.raises(CacheStale) as caught:
        await state.lifecycle.report_task_success(
            job_id, TaskId.index(0), first.task_instance_id, state.session, frame_of(1)
        )
    assert caught.value.reason is StaleReason.INVALID_TASK_INSTANCE_ID
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
    await trio.sleep(3)
    await state.update_execution_manager_heartbeat(worker)
    assert (await sweep_task_instances(state.lifecycle)).hard_timeouts == 1
    assert database.state_of(job_id) is JobState.FAILED
    assert (
        await state.lifecycle.get_job_error(job_id)
        == "hard timeout (2000 ms) exceeded (enforced by storage)"
    )
    assert len(state.lifecycle.pool) == 0


async def test_a_hard_timeout_that_fails_on_the_database_waits_for_it_to_recover(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(1))
    worker = await em(state)
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
    await trio.sleep(3)
    await state.update_execution_manager_heartbeat(worker)
    database.fail_once["transition_job"] = 1
    with pytest.raises(StorageUnavailable):
        await sweep_task_instances(state.lifecycle)
    assert task_state(state, job_id, 0) is TaskState.RUNNING
    # The database may be down: no timeout until a write says it is back.
    assert (await sweep_task_instances(state.lifecycle)).hard_timeouts == 0
    await state.update_execution_manager_heartbeat(worker)
    assert (await sweep_task_instances(state.lifecycle)).hard_timeouts == 1
    assert database.state_of(job_id) is JobState.FAILED


async def test_gc_comprehensive(autojump_clock: trio.testing.MockClock) -> None:
    """Healthy, soft-timed-out, hard-timed-out, dead-EM and finished instances in one sweep."""
    graph = TaskGraph()
    slow = summing_task(1, 1, retries=1, instances=2, timeouts=FAST_TIMEOUTS)
    for _ in range(5):
        graph.insert_task(slow)
    state, database, job_id = await started(graph)
    alive, doomed = await em(state), await em(state)

    async def register(index: int, worker: ExecutionManagerId) -> TaskInstanceId:
        context = await state.lifecycle.register_task_instance(
            job_id,
            TaskId.index(index),
            worker,
            state.session,
        )
        return context.task_instance_id

    await register(0, alive)  # will pass its hard timeout
    await trio.sleep(1.5)
    await register(1, alive)  # will pass its soft timeout only
    finished = await register(2, alive)
    await register(3, doomed)
    await register(4, alive)
    await trio.sleep(0.2)
    await register(4, alive)  # healthy second instance
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(2), finished, state.session, frame_of(1)
    )
    await trio.sleep(1.4)  # t = 3.1: task 0 is past 2 s + 1 s; tasks 1, 4 past their soft timeout
    await state.update_execution_manager_heartbeat(alive)
    database.ems[doomed].last_heartbeat_at = -10.0
    report = await sweep_task_instances(state.lifecycle)
    assert report == SweepReport(
        dead_execution_managers=1, removed_for_dead_em=1, hard_timeouts=1, soft_timeouts=3
    )
    assert sorted(e.task_id.position or 0 for e in await drain(state)) == [0, 1, 3, 4]
    assert [task_state(state, job_id, n) for n in range(5)] == [
        TaskState.READY,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
        TaskState.READY,
        TaskState.RUNNING,
    ]
    assert len(state.lifecycle.pool) == 3


async def test_the_gc_loop_declares_a_silent_em_dead_between_cutoff_and_cutoff_plus_interval(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    database = FakeDatabase()
    async with open_storage_state(
        storage_config(), database, clock=trio.current_time, threaded=False
    ) as state:
        job_id = await state.lifecycle.register_job(
            new_group(database), *submission(diamond(), [1, 2])
        )
        await state.lifecycle.start_job(job_id)
        await drain(state)
        worker = await em(state)
        await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
        began = trio.current_time()
        with caplog.at_level(logging.WARNING, logger="spider.storage.instance_gc"):
            batch = await state.poll_ready_tasks(Lane.TASK, 10, 60_000)
        waited = trio.current_time() - began
        assert [entry.task_id for entry in batch.tasks] == [TaskId.index(0)]
        assert 5 < waited <= 6
        assert any("declared 1 execution manager(s) dead" in r.getMessage() for r in caplog.records)


async def test_the_gc_loop_survives_a_db_outage(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    database = FakeDatabase()
    async with open_storage_state(
        storage_config(), database, clock=trio.current_time, threaded=False
    ) as state:
        database.unavailable = True
        with caplog.at_level(logging.WARNING, logger="spider.storage"):
            await trio.sleep(2.5)
        database.unavailable = False
        assert sum("sweep skipped" in r.getMessage() for r in caplog.records) == 2
        calls = database.calls["mark_dead_execution_managers"]
        await trio.sleep(1)
        assert database.calls["mark_dead_execution_managers"] == calls + 1
        assert state.session == 1
