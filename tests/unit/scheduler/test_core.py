"""``SchedulerCore`` against a fake storage: polling, rescheduling, storage restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing

from spider.core.backoff import Backoff
from spider.core.ids import AssignmentId, JobId, ResourceGroupId, SessionId
from spider.core.ready_task import ReadyTask
from spider.core.supervision import SUPERVISOR_BACKOFF, supervise
from spider.core.task_id import TaskId
from spider.rpc import Endpoint
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.config import RoundRobinConfig
from spider.scheduler.core import SchedulerCore
from spider.scheduler.errors import InvalidSessionId, StorageRejected
from spider.scheduler.storage_link import InboundBatch, InboundLane

from .fake_storage import FakeStorage

ADVERTISED = Endpoint("127.0.0.1", 50052)
CONFIG = RoundRobinConfig(
    active_job_queue_capacity=4,
    dispatch_queue_capacity=4,
    ready_task_capacity=8,
    commit_ready_task_capacity=2,
    cleanup_ready_task_capacity=2,
    storage_poll_timeout_ms=500,
    tick_interval_ms=5,
    finalizing_job_expiration_timeout_sec=300,
)
RECONNECT = Backoff(initial=0.1, cap=2.0, jitter=0.05)


def task(job: int, index: int) -> ReadyTask:
    return ReadyTask(ResourceGroupId(1), JobId(job), TaskId.index(index))


@pytest.fixture
def storage() -> FakeStorage:
    return FakeStorage()


@pytest.fixture
async def core(storage: FakeStorage) -> AsyncIterator[SchedulerCore]:
    core = SchedulerCore(CONFIG, storage, RECONNECT)
    async with trio.open_nursery() as nursery:
        await nursery.start(core.run, ADVERTISED)
        yield core
        nursery.cancel_scope.cancel()


async def drain(core: SchedulerCore, wait: float = 1.0) -> list[IssuedAssignment]:
    taken = []
    while (item := await core.queue.take(wait)) is not None:
        taken.append(item)
    return taken


def keys(assignments: list[IssuedAssignment]) -> list[tuple[int, str]]:
    return [(a.entry.job_id, str(a.entry.task_id)) for a in assignments]


async def test_registers_then_dispatches_polled_work_in_its_session(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    assert storage.registrations == [ADVERTISED]
    assert core.identity.scheduler_id == 1
    assert core.session == 1

    storage.enqueue(task(1, 0), task(1, 1), task(2, 0))
    taken = await drain(core)

    assert keys(taken) == [(1, "Index(0)"), (2, "Index(0)"), (1, "Index(1)")]
    assert {a.session for a in taken} == {1}


async def test_polls_ask_only_for_what_the_buffers_can_hold(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(*(task(job, 0) for job in range(20)))
    await trio.sleep(1)
    # 4 in the dispatch queue, 8 buffered: the task lane is not polled past its capacity.
    assert len(core.queue) == 4
    assert core.placement.buffered == 8
    assert core.lane_limit(InboundLane.TASK) == 0
    assert max(storage.polls[InboundLane.TASK]) <= CONFIG.ready_task_capacity

    taken = await drain(core)
    assert sorted(a.entry.job_id for a in taken) == list(range(20))


async def test_rescheduled_assignment_gets_a_new_id_and_the_current_session(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(task(1, 0))
    (first,) = await drain(core)

    core.reschedule(first)
    (again,) = await drain(core)

    assert again.entry == first.entry
    assert again.id != first.id
    assert again.session == core.session


async def test_reschedule_dedups_against_a_buffered_inbound_task(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(task(1, 0))
    (first,) = await drain(core)
    core.placement.load(first.entry, trio.current_time())  # the same task, buffered again

    core.reschedule(first)
    taken = await drain(core)

    assert keys(taken) == [(1, "Index(0)")]


async def test_reschedule_drops_an_assignment_of_a_stale_session(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    stale = IssuedAssignment(AssignmentId(99), task(1, 0), SessionId(0))
    core.reschedule(stale)
    assert await drain(core) == []


async def test_survives_a_storage_restart_and_clears_the_old_session(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(*(task(job, 0) for job in range(10)))
    await trio.sleep(0.5)
    assert len(core.queue) == 4

    storage.restart(down=True)
    await trio.sleep(10)
    # A lane that sees the new session registers (retrying while storage is down); the others
    # fail their polls meanwhile. Either way: retried with backoff, capped at 2 s, not a spin.
    failures = storage.failed_polls + storage.failed_registrations
    assert 5 <= failures < 60
    storage.down = False
    await trio.sleep(3)

    assert len(storage.registrations) == 2
    assert core.session == 2
    assert core.identity.own_ids == {1, 2}
    assert len(core.queue) == 0  # the old session's assignments are gone
    assert core.placement.buffered == 0
    storage.enqueue(task(50, 0))
    taken = await drain(core)
    assert keys(taken) == [(50, "Index(0)")]
    assert taken[0].session == 2


async def test_a_transient_failure_without_a_restart_does_not_register_again(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    """Storage answers a repeated registration by re-enqueuing all its ready work, so
    registering again after a blip would dispatch tasks already queued a second time."""
    storage.enqueue(*(task(job, 0) for job in range(3)))
    await trio.sleep(0.5)
    storage.down = True  # a network blip: same storage process, same session
    await trio.sleep(3)
    storage.down = False
    storage.enqueue(task(9, 0))
    await trio.sleep(3)

    assert storage.failed_polls > 0
    assert len(storage.registrations) == 1
    assert core.session == 1
    taken = await drain(core)
    assert sorted(keys(taken)) == [
        (0, "Index(0)"),
        (1, "Index(0)"),
        (2, "Index(0)"),
        (9, "Index(0)"),
    ]


async def test_a_restart_seen_only_in_a_poll_answer_clears_state_too(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(*(task(job, 0) for job in range(6)))
    await trio.sleep(0.5)
    storage.restart(down=False)  # polls reconnect and simply see a newer session
    storage.enqueue(task(7, 0))
    await trio.sleep(0.5)

    assert core.session == 2
    taken = await drain(core)
    assert keys(taken) == [(7, "Index(0)")]


async def test_registration_rejected_by_storage_is_fatal(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.rejects = True
    core = SchedulerCore(CONFIG, storage, RECONNECT)
    with pytest.raises(StorageRejected):
        await core.run(ADVERTISED)


async def test_a_storage_session_going_backwards_is_fatal(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.session = 5
    core = SchedulerCore(CONFIG, storage, RECONNECT)

    async def storage_database_replaced() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(core.run, ADVERTISED)
            storage.session = 1  # a fresh database
            storage.down = True
            await trio.sleep(1)
            storage.down = False
            await trio.sleep(10)

    with pytest.raises(ExceptionGroup) as raised:
        await storage_database_replaced()
    assert raised.group_contains(InvalidSessionId, depth=2)


async def test_scheduler_starts_before_storage(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.down = True
    core = SchedulerCore(CONFIG, storage, RECONNECT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(core.run, ADVERTISED)
        await trio.sleep(5)
        assert storage.registrations == []
        storage.down = False
        storage.enqueue(task(1, 0))
        taken = await drain(core, wait=5)
        nursery.cancel_scope.cancel()
    assert keys(taken) == [(1, "Index(0)")]


async def test_finalizing_jobs_expire_without_other_activity(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    config = RoundRobinConfig(finalizing_job_expiration_timeout_sec=60)
    core = SchedulerCore(config, storage, RECONNECT)
    async with trio.open_nursery() as nursery:
        await nursery.start(core.run, ADVERTISED)
        storage.enqueue(ReadyTask(ResourceGroupId(1), JobId(1), TaskId.COMMIT))
        await drain(core)
        assert core.placement.is_finalizing(JobId(1))
        await trio.sleep(60)
        assert not core.placement.is_finalizing(JobId(1))
        nursery.cancel_scope.cancel()


async def test_a_cleanup_that_drops_buffered_tasks_wakes_the_parked_task_lane(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(*(task(1, index) for index in range(12)))
    await trio.sleep(1)
    assert core.lane_limit(InboundLane.TASK) == 0  # 4 queued, 8 buffered: parked

    # Job 1 is cancelled: its cleanup drops the 8 buffered tasks, which frees the task lane.
    storage.enqueue(ReadyTask(ResourceGroupId(1), JobId(1), TaskId.CLEANUP))
    await trio.sleep(1)
    storage.enqueue(task(2, 0))
    await trio.sleep(1)

    assert storage.lanes[InboundLane.TASK] == []  # polled without anything taken meanwhile


async def test_work_arriving_between_jobs_is_placed_without_waiting_for_a_tick(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    # A long tick makes any wait for one visible: only storage's 1 ms per call may pass.
    slow_ticks = attrs.evolve(CONFIG, tick_interval_ms=1000)
    core = SchedulerCore(slow_ticks, storage, RECONNECT)
    async with trio.open_nursery() as nursery:
        await nursery.start(core.run, ADVERTISED)
        for job in range(3):
            storage.enqueue(task(job, 0))
            enqueued = trio.current_time()
            taken = await core.queue.take(10)
            assert taken is not None
            assert taken.entry.job_id == job
            assert trio.current_time() - enqueued < 0.01
        nursery.cancel_scope.cancel()


async def test_an_idle_scheduler_does_not_spin(
    core: SchedulerCore, storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.enqueue(task(1, 0))
    assert len(await drain(core, wait=0.1)) == 1
    polls = sum(len(counts) for counts in storage.polls.values())
    await trio.sleep(10)
    # Each lane waits out its 500 ms long poll: about 20 polls per lane in 10 s, not thousands.
    assert sum(len(counts) for counts in storage.polls.values()) - polls <= 3 * 21


async def test_a_lane_deeper_than_a_page_arrives_in_pages_completely_and_once(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    config = attrs.evolve(CONFIG, ready_task_capacity=100, storage_poll_page_size=3)
    core = SchedulerCore(config, storage, RECONNECT)
    storage.enqueue(*(task(job, index) for job in range(5) for index in range(5)))
    async with trio.open_nursery() as nursery:
        await nursery.start(core.run, ADVERTISED)
        taken = await drain(core)
        nursery.cancel_scope.cancel()

    assert sorted(keys(taken)) == sorted(
        (job, f"Index({index})") for job in range(5) for index in range(5)
    )
    polls = storage.polls[InboundLane.TASK]
    assert max(polls) == 3
    # 25 entries in full pages of 3, then the partial page of 1: no entry was asked for twice.
    assert polls[:9] == [3] * 9


@attrs.define
class _BrokenOnce(FakeStorage):
    """A storage whose first task-lane poll raises what no handler expects (a bug)."""

    broken: bool = True

    async def poll(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        if self.broken and lane is InboundLane.TASK:
            self.broken = False
            raise RuntimeError("a bug in the poller")
        return await super().poll(lane, max_items, wait_ms)


async def test_supervised_core_restarts_after_a_bug_without_registering_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    storage = _BrokenOnce()
    core = SchedulerCore(CONFIG, storage, RECONNECT)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise, "scheduler core loop", core.run, ADVERTISED)
        storage.enqueue(task(1, 0))
        taken = await drain(core, wait=5)
        nursery.cancel_scope.cancel()
    assert not storage.broken
    assert len(storage.registrations) == 1
    assert keys(taken) == [(1, "Index(0)")]


async def test_supervised_core_is_not_restarted_on_a_fatal_error(
    storage: FakeStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.rejects = True
    core = SchedulerCore(CONFIG, storage, RECONNECT)
    with pytest.raises(StorageRejected):
        await supervise("scheduler core loop", core.run, ADVERTISED)
    assert trio.current_time() < SUPERVISOR_BACKOFF.initial  # no restart was waited for
