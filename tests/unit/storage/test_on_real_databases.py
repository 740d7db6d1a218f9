"""The key storage scenarios on the real backends, with database calls in worker threads.

The other storage tests run on ``FakeDatabase`` with inline calls; these check that the domain
core and the real backends (SQLite, and MariaDB when the suite's private server is available:
``storage_database`` in ``tests/conftest.py``) agree on the contract: transitions, persisted
task outputs that let a restarted storage resume a running job, stored job outputs, EM
liveness, sessions.
"""

from __future__ import annotations

import pytest
import trio

from spider.core.job_state import JobState
from spider.core.task_id import TaskId
from spider.storage import EmDead, Lane, StorageState
from spider.storage.db import StorageDatabase
from spider.storage.instance_gc import sweep_task_instances

from .jobs import (
    SimulatedEm,
    decode_job_outputs,
    diamond,
    drain,
    flat,
    frame_of,
    layered,
    reference_job_outputs,
    storage_config,
    submission,
)


class Clock:
    """Wall-clock seconds the test sets by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(storage_database: StorageDatabase) -> StorageDatabase:
    return storage_database


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def open_state(database: StorageDatabase, clock: Clock) -> StorageState:
    return await StorageState.create(storage_config(), database, clock=clock)


@pytest.fixture
async def state(database: StorageDatabase, clock: Clock) -> StorageState:
    return await open_state(database, clock)


async def test_a_diamond_runs_to_success_and_its_outputs_survive_a_restart(
    database: StorageDatabase, clock: Clock, state: StorageState
) -> None:
    group = await state.add_resource_group("team", b"pw")
    graph = diamond()
    job_id = await state.lifecycle.register_job(group, *submission(graph, [3, 4]))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    with trio.fail_after(60):
        assert await SimulatedEm(state, graph, em).run_job(job_id) is JobState.SUCCEEDED
    expected = reference_job_outputs(graph, [3, 4])
    assert decode_job_outputs(await state.lifecycle.get_job_outputs(job_id)) == expected
    restarted = await open_state(database, clock)
    assert restarted.session == state.session + 1
    assert decode_job_outputs(await restarted.lifecycle.get_job_outputs(job_id)) == expected
    await restarted.verify_resource_group(group, b"pw")


async def test_a_running_job_resumes_after_a_restart(
    database: StorageDatabase, clock: Clock, state: StorageState
) -> None:
    group = await state.add_resource_group("team", b"")
    graph = diamond()
    job_id = await state.lifecycle.register_job(group, *submission(graph, [3, 4]))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    (entry,) = await drain(state)
    a = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    await state.lifecycle.report_task_success(
        job_id, entry.task_id, a.task_instance_id, state.session, frame_of(7)
    )
    restarted = await open_state(database, clock)
    assert restarted.recovery.recovered == {JobState.RUNNING: 1}
    restarted.lifecycle.resend_ready_work()
    assert [e.task_id for e in await drain(restarted)] == [TaskId.index(1), TaskId.index(2)]
    for task_id in (TaskId.index(1), TaskId.index(2)):
        restarted.lifecycle.queue.put(group, job_id, task_id)
    simulated = SimulatedEm(restarted, graph, em)
    with trio.fail_after(60):
        assert await simulated.run_job(job_id) is JobState.SUCCEEDED
    assert TaskId.index(0) not in simulated.successes
    outputs = decode_job_outputs(await restarted.lifecycle.get_job_outputs(job_id))
    assert outputs == reference_job_outputs(graph, [3, 4])


async def test_commit_ready_and_cleanup_ready_jobs_are_recovered(
    database: StorageDatabase, clock: Clock, state: StorageState
) -> None:
    group = await state.add_resource_group("team", b"")
    committing = await state.lifecycle.register_job(group, *submission(flat(2), [1, 2]))
    cancelled = await state.lifecycle.register_job(group, *submission(flat(2), [1, 2]))
    await state.lifecycle.start_job(committing)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    for entry in await drain(state):
        context = await state.lifecycle.register_task_instance(
            committing, entry.task_id, em, state.session
        )
        await state.lifecycle.report_task_success(
            committing,
            entry.task_id,
            context.task_instance_id,
            state.session,
            frame_of(entry.task_id.position or 0),
        )
    assert await state.lifecycle.cancel_job(cancelled) is JobState.CLEANUP_READY
    assert await state.lifecycle.get_job_state(committing) is JobState.COMMIT_READY
    restarted = await open_state(database, clock)
    assert restarted.recovery.recovered == {JobState.COMMIT_READY: 1, JobState.CLEANUP_READY: 1}
    restarted.lifecycle.resend_ready_work()
    assert [e.job_id for e in await drain(restarted, Lane.COMMIT)] == [committing]
    assert [e.job_id for e in await drain(restarted, Lane.CLEANUP)] == [cancelled]
    commit = await restarted.lifecycle.register_task_instance(
        committing, TaskId.COMMIT, em, restarted.session
    )
    assert decode_job_outputs(commit.serialized_task_io) == [0, 1]
    await restarted.lifecycle.report_task_success(
        committing, TaskId.COMMIT, commit.task_instance_id, restarted.session, b""
    )
    assert await restarted.lifecycle.get_job_state(committing) is JobState.SUCCEEDED


async def test_a_silent_em_is_declared_dead_and_its_task_rescheduled(
    clock: Clock, state: StorageState
) -> None:
    group = await state.add_resource_group("team", b"")
    job_id = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
    await state.lifecycle.start_job(job_id)
    await drain(state)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), em, state.session)
    clock.now += 5.5
    report = await sweep_task_instances(state.lifecycle)
    assert (report.dead_execution_managers, report.removed_for_dead_em) == (1, 1)
    assert [e.task_id for e in await drain(state)] == [TaskId.index(0)]
    with pytest.raises(EmDead):
        await state.update_execution_manager_heartbeat(em)


async def test_a_layered_job_with_failures_succeeds(state: StorageState) -> None:
    group = await state.add_resource_group("team", b"")
    graph = layered(5, 40, 5, retries=3, instances=2)
    inputs = list(range(40))
    job_id = await state.lifecycle.register_job(group, *submission(graph, inputs))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    unlucky = {TaskId.index(n) for n in range(0, 200, 2)}
    simulated = SimulatedEm(state, graph, em, twin_failures=unlucky.__contains__)
    with trio.fail_after(60):
        assert await simulated.run_job(job_id) is JobState.SUCCEEDED
    outputs = decode_job_outputs(await state.lifecycle.get_job_outputs(job_id))
    assert outputs == reference_job_outputs(graph, inputs)


async def test_a_job_submitted_started_is_running_durably_and_its_waiter_gets_the_outputs(
    database: StorageDatabase, clock: Clock, state: StorageState
) -> None:
    group = await state.add_resource_group("team", b"")
    graph = diamond()
    job_id = await state.lifecycle.register_job(group, *submission(graph, [3, 4]), start=True)
    assert database.get_job_status(job_id).state is JobState.RUNNING
    restarted = await open_state(database, clock)
    assert restarted.recovery.recovered == {JobState.RUNNING: 1}
    restarted.lifecycle.resend_ready_work()
    em = (await restarted.register_execution_manager("127.0.0.1")).execution_manager_id
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(SimulatedEm(restarted, graph, em).run_job, job_id)
            outcome = await restarted.wait_for_job(job_id, 60)
    assert outcome.state is JobState.SUCCEEDED
    assert outcome.serialized_outputs is not None
    assert decode_job_outputs(outcome.serialized_outputs) == reference_job_outputs(graph, [3, 4])
