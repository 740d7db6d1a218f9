"""The inbound queue: three deduplicated lanes that never block producers.

Mirrors upstream's ``inbound_queue.rs`` tests (early return at ``max_items``, order kept, wait
expiry) and pins the deliberate change: a poll returns as soon as one entry is there.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider.core.ids import JobId, ResourceGroupId
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId
from spider.storage import Lane
from spider.storage.config import InboundQueueConfig
from spider.storage.inbound_queue import InboundQueue

from .fake_database import FakeDatabase
from .jobs import create_state

GROUP = ResourceGroupId(1)


def queue(capacity: int = 1) -> InboundQueue:
    return InboundQueue.from_config(InboundQueueConfig(capacity, capacity, capacity))


def put_tasks(target: InboundQueue, count: int, job: int = 1) -> list[ReadyTask]:
    entries = [ReadyTask(GROUP, JobId(job), TaskId.index(n)) for n in range(count)]
    for entry in entries:
        target.put(entry.resource_group_id, entry.job_id, entry.task_id)
    return entries


async def test_receive_returns_early_when_max_items_is_reached_and_keeps_order() -> None:
    lanes = queue(capacity=1)
    entries = put_tasks(lanes, 4)
    assert await lanes.receive(Lane.TASK, 2) == entries[:2]
    assert await lanes.receive(Lane.TASK, 10) == entries[2:]


async def test_receive_returns_as_soon_as_one_entry_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lanes = queue()
    received: list[ReadyTask] = []
    async with trio.open_nursery() as nursery:

        async def poll() -> None:
            with trio.move_on_after(10):
                received.extend(await lanes.receive(Lane.TASK, 10))

        nursery.start_soon(poll)
        await trio.sleep(0.25)
        entries = put_tasks(lanes, 1)
    assert received == entries
    assert trio.current_time() == pytest.approx(0.25)


async def test_a_poll_returns_empty_when_the_wait_elapses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state = await create_state(FakeDatabase())
    began = trio.current_time()
    batch = await state.poll_ready_tasks(Lane.COMMIT, 10, 1_500)
    assert batch.tasks == ()
    assert batch.session_id == state.session
    assert trio.current_time() - began == pytest.approx(1.5)


async def test_max_items_zero_returns_at_once_even_with_entries_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lanes = queue()
    put_tasks(lanes, 2)
    began = trio.current_time()
    assert await lanes.receive(Lane.TASK, 0) == []
    assert trio.current_time() == began
    assert lanes.depth(Lane.TASK) == 2


async def test_a_poll_with_no_wait_returns_what_is_there() -> None:
    state = await create_state(FakeDatabase())
    state.lifecycle.queue.put(GROUP, JobId(3), TaskId.COMMIT)
    batch = await state.poll_ready_tasks(Lane.COMMIT, 5, 0)
    assert batch.tasks == (ReadyTask(GROUP, JobId(3), TaskId.COMMIT),)


async def test_each_kind_goes_to_its_own_lane() -> None:
    lanes = queue()
    lanes.put(GROUP, JobId(1), TaskId.index(4))
    lanes.put(GROUP, JobId(1), TaskId.COMMIT)
    lanes.put(GROUP, JobId(2), TaskId.CLEANUP)
    assert [lanes.depth(lane) for lane in Lane] == [1, 1, 1]
    assert await lanes.receive(Lane.CLEANUP, 5) == [ReadyTask(GROUP, JobId(2), TaskId.CLEANUP)]
    assert await lanes.receive(Lane.COMMIT, 5) == [ReadyTask(GROUP, JobId(1), TaskId.COMMIT)]


async def test_an_entry_already_waiting_is_not_added_twice_but_may_come_back_later() -> None:
    lanes = queue()
    put_tasks(lanes, 1)
    put_tasks(lanes, 1)
    put_tasks(lanes, 1, job=2)
    assert lanes.depth(Lane.TASK) == 2
    assert len(await lanes.receive(Lane.TASK, 10)) == 2
    put_tasks(lanes, 1)
    assert lanes.depth(Lane.TASK) == 1


async def test_a_cancelled_receive_loses_no_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lanes = queue()
    with trio.move_on_after(1):
        await lanes.receive(Lane.TASK, 1)
    entries = put_tasks(lanes, 1)
    with trio.CancelScope() as scope:
        scope.cancel()
        assert await lanes.receive(Lane.TASK, 5) == entries


def test_a_lane_above_its_capacity_warns_once_and_keeps_every_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = queue(capacity=4)
    with caplog.at_level(logging.WARNING, logger="spider.storage.inbound_queue"):
        put_tasks(lanes, 10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "above its capacity of 4" in warnings[0].getMessage()
    assert lanes.depth(Lane.TASK) == 10


async def test_the_warning_rearms_after_the_lane_drains(caplog: pytest.LogCaptureFixture) -> None:
    lanes = queue(capacity=4)
    with caplog.at_level(logging.INFO, logger="spider.storage.inbound_queue"):
        put_tasks(lanes, 5)
        await lanes.receive(Lane.TASK, 5)
        put_tasks(lanes, 5, job=2)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("above its capacity" in message for message in messages) == 2
    assert any("drained to 0 entries" in message for message in messages)


async def test_many_pollers_share_entries_without_duplicates() -> None:
    lanes = queue()
    received: list[ReadyTask] = []

    async def poller() -> None:
        while True:
            received.extend(await lanes.receive(Lane.TASK, 3))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(poller)
        await trio.testing.wait_all_tasks_blocked()
        entries = put_tasks(lanes, 50)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert sorted(received, key=lambda e: e.task_id.position or 0) == entries
