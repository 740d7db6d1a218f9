"""Storage's own database outage fails no one's work: while the database refuses writes no
instance times out and no EM is declared dead for the heartbeats it could not record; when it
is back, deadlines move by the time it lasted. On Trio's mock clock; the test config sweeps
every second, declares an EM dead after 5 s without heartbeat, and gives hard timeouts (2 s) a
1 s grace.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId
from spider.core.job_state import JobState
from spider.core.task_id import TaskId
from spider.storage import StorageState, StorageUnavailable
from spider.storage.cluster_status import DatabaseHealth
from spider.storage.instance_gc import sweep_task_instances
from spider.storage.outage import DatabaseOutage, OutagePeriod

from .fake_database import FakeDatabase
from .jobs import frame_of
from .test_instance_sweeps import em, fast_graph, started

WRITES = (
    "heartbeat_execution_manager",
    "record_task_outputs",
    "transition_job",
    "insert_job",
    "register_execution_manager",
)
"""What a full SQLite disk refuses; reads, and a sweep that marks no EM dead, still work."""
CUTOFF = 5.0
GRACE = 1.0


def refuse_writes(database: FakeDatabase, refusing: bool) -> None:
    for method in WRITES:
        database.fail_once[method] = 10**9 if refusing else 0


async def heartbeat(state: StorageState, em_id: ExecutionManagerId) -> bool:
    """An EM's heartbeat; whether storage recorded it."""
    try:
        await state.update_execution_manager_heartbeat(em_id)
    except StorageUnavailable:
        return False
    return True


async def test_an_outage_longer_than_every_deadline_fails_no_instance_and_no_em(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(1))
    worker = await em(state)
    first = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), worker, state.session
    )
    await trio.sleep(0.5)
    refuse_writes(database, True)
    outage_began = trio.current_time()
    for _ in range(20):  # 20 s: four times the EM cutoff, ten times the hard timeout
        assert not await heartbeat(state, worker)
        report = await sweep_task_instances(state.lifecycle)
        assert (report.dead_execution_managers, report.hard_timeouts) == (0, 0)
        await trio.sleep(1)
    with pytest.raises(StorageUnavailable):
        await state.lifecycle.report_task_success(
            job_id, TaskId.index(0), first.task_instance_id, state.session, frame_of(2)
        )
    refuse_writes(database, False)
    assert await heartbeat(state, worker)
    outage = state.persistence.outage
    assert outage.last is not None
    assert outage.last.duration == pytest.approx(trio.current_time() - outage_began)
    # The EM's retried report lands a little later, after a sweep: still in time.
    await trio.sleep(GRACE / 2)
    report = await sweep_task_instances(state.lifecycle)
    assert (report.dead_execution_managers, report.hard_timeouts) == (0, 0)
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(0), first.task_instance_id, state.session, frame_of(2)
    )
    assert database.state_of(job_id) is JobState.SUCCEEDED


async def test_deadlines_move_by_the_part_of_the_outage_each_instance_lived_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(2))
    worker = await em(state)
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
    await trio.sleep(1)
    pool = state.lifecycle.pool
    early = pool.snapshot()[0]
    soft, hard = early.soft_deadline, early.hard_deadline
    refuse_writes(database, True)
    assert not await heartbeat(state, worker)
    await trio.sleep(4)
    # Registration writes nothing: an instance can start while the disk is full.
    await state.lifecycle.register_task_instance(job_id, TaskId.index(1), worker, state.session)
    late = pool.snapshot()[1]
    late_hard = late.hard_deadline
    await trio.sleep(6)
    refuse_writes(database, False)
    assert await heartbeat(state, worker)
    assert early.soft_deadline == pytest.approx(soft + 10)
    assert early.hard_deadline == pytest.approx(hard + 10)
    assert late.hard_deadline == pytest.approx(late_hard + 6)


async def test_a_hard_deadline_keeps_the_grace_after_the_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outage = OutagePeriod(started=10.0, ended=11.0, started_wall=0.0, ended_wall=1.0)
    state, _, job_id = await started(fast_graph(1))
    worker = await em(state)
    await state.lifecycle.register_task_instance(job_id, TaskId.index(0), worker, state.session)
    record = state.lifecycle.pool.snapshot()[0]
    record.registered_at, record.hard_deadline = 9.0, 10.5
    assert state.lifecycle.pool.postpone(outage) == 1
    assert record.hard_deadline == pytest.approx(11.0 + GRACE)


async def test_an_em_silent_before_the_outage_began_is_still_declared_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, _ = await started(fast_graph(1))
    silent = await em(state)
    beating = await em(state)
    for _ in range(6):
        await trio.sleep(1)
        assert await heartbeat(state, beating)
    refuse_writes(database, True)
    await trio.sleep(1)
    assert not await heartbeat(state, beating)
    assert (await sweep_task_instances(state.lifecycle)).dead_execution_managers == 1
    assert state.lifecycle.liveness.is_dead(silent)
    assert not state.lifecycle.liveness.is_dead(beating)


async def test_an_em_that_never_beats_again_is_declared_dead_one_cutoff_after_the_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, _ = await started(fast_graph(1))
    gone = await em(state)
    other = await em(state)
    refuse_writes(database, True)
    await trio.sleep(1)
    assert not await heartbeat(state, other)
    await trio.sleep(10)
    refuse_writes(database, False)
    assert await heartbeat(state, other)
    ended = trio.current_time()
    while trio.current_time() < ended + CUTOFF:
        assert (await sweep_task_instances(state.lifecycle)).dead_execution_managers == 0
        assert await heartbeat(state, other)
        await trio.sleep(1)
    assert (await sweep_task_instances(state.lifecycle)).dead_execution_managers == 1
    assert state.lifecycle.liveness.is_dead(gone)


async def test_the_status_says_why_the_database_refuses_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, database, job_id = await started(fast_graph(1))
    worker = await em(state)
    assert (await state.cluster_status()).database == DatabaseHealth(True, "", 0.0, 0.0, 0.0)
    refuse_writes(database, True)
    assert not await heartbeat(state, worker)
    await trio.sleep(3)
    # Reads still work, and still answer.
    assert await state.lifecycle.get_job_state(job_id) is JobState.RUNNING
    health = (await state.cluster_status()).database
    assert not health.writable
    assert "heartbeat_execution_manager" in health.problem
    assert health.unwritable_for_sec == pytest.approx(3)
    refuse_writes(database, False)
    assert await heartbeat(state, worker)
    await trio.sleep(2)
    health = (await state.cluster_status()).database
    assert (health.writable, health.problem, health.unwritable_for_sec) == (True, "", 0.0)
    assert (health.last_outage_sec, health.since_last_outage_sec) == (3.0, 2.0)


def test_a_read_ends_an_outage_only_if_no_write_failed_in_it() -> None:
    now = [0.0]
    ended: list[OutagePeriod] = []
    outage = DatabaseOutage(lambda: 100 + now[0], lambda: now[0])
    outage.on_end(ended.append)

    outage.failed("connection refused", write=False)
    now[0] = 2.0
    outage.succeeded(write=False)
    assert not outage.ongoing
    assert ended == [OutagePeriod(0.0, 2.0, 100.0, 102.0)]

    outage.failed("disk full", write=True)
    outage.succeeded(write=False)
    assert outage.since == 2.0
    assert outage.reason == "disk full"
    now[0] = 5.0
    outage.succeeded(write=True)
    assert not outage.ongoing
    assert ended[-1] == OutagePeriod(2.0, 5.0, 102.0, 105.0)
