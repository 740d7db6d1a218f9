"""``DispatchQueue``: bounded, session-stamped, many concurrent long-polling readers."""

from __future__ import annotations

import itertools

import attrs
import pytest
import trio
import trio.testing

from spider.core.ids import AssignmentId, JobId, ResourceGroupId, SessionId
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.errors import InvalidSessionId

IDS = itertools.count(1)


@attrs.define(eq=False)
class Producer:
    """Puts into a queue, waiting (on the queue's ``on_take``) while it is full."""

    queue: DispatchQueue
    space: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self.queue.on_take = self.space.set

    async def put(self, item: IssuedAssignment) -> None:
        while self.queue.free_slots == 0:
            self.space = trio.Event()
            self.queue.on_take = self.space.set
            await self.space.wait()
        self.queue.put(item)


def assignment(session: int, job: int = 1) -> IssuedAssignment:
    entry = ReadyTask(ResourceGroupId(1), JobId(job), TaskId.index(0))
    return IssuedAssignment(AssignmentId(next(IDS)), entry, SessionId(session))


async def test_round_trip_and_initial_session() -> None:
    queue = DispatchQueue(4)
    assert queue.session == 0
    queue.bump(SessionId(1))
    item = assignment(1)

    queue.put(item)

    assert queue.free_slots == 3
    assert await queue.take(0) == item
    assert await queue.take(0) is None


@pytest.mark.parametrize("session", [0, 1])
async def test_bump_to_the_same_or_an_older_session_is_invalid(session: int) -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(1))
    with pytest.raises(InvalidSessionId):
        queue.bump(SessionId(session))
    queue.bump(SessionId(2))
    assert queue.session == 2


async def test_pre_bump_items_are_not_delivered_and_the_queue_is_empty_after() -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(1))
    for _ in range(3):
        queue.put(assignment(1))

    assert queue.bump(SessionId(2)) == 3

    assert queue.free_slots == 4
    assert await queue.take(0) is None
    fresh = assignment(2)
    queue.put(fresh)
    assert await queue.take(0) == fresh


async def test_an_item_of_another_session_is_refused() -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(2))
    with pytest.raises(InvalidSessionId):
        queue.put(assignment(1))


async def test_take_waits_exactly_its_wait(autojump_clock: trio.testing.MockClock) -> None:
    queue = DispatchQueue(4)
    start = trio.current_time()
    assert await queue.take(1.5) is None
    assert trio.current_time() - start == pytest.approx(1.5)


async def test_a_waiting_reader_gets_an_item_put_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(1))
    item = assignment(1)
    got: list[IssuedAssignment | None] = []

    async def reader() -> None:
        got.append(await queue.take(10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(2)
        queue.put(item)

    assert got == [item]
    assert trio.current_time() == pytest.approx(2)


async def test_an_item_handed_over_before_a_bump_is_not_delivered_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(1))
    got: list[IssuedAssignment | None] = []

    async def reader() -> None:
        got.append(await queue.take(5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        queue.put(assignment(1))  # handed straight to the waiting reader...
        queue.bump(SessionId(2))  # ...which has not run yet

    assert got == [None]


async def test_load_balancing_across_readers_loses_and_duplicates_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = DispatchQueue(16)
    queue.bump(SessionId(1))
    sent = [assignment(1, job) for job in range(100)]
    received: dict[int, list[IssuedAssignment]] = {reader: [] for reader in range(4)}

    async def reader(number: int) -> None:
        while (item := await queue.take(1.0)) is not None:
            received[number].append(item)
            await trio.sleep(0.01 * (number + 1))  # readers of different speeds

    async with trio.open_nursery() as nursery:
        for number in received:
            nursery.start_soon(reader, number)
        producer = Producer(queue)
        for item in sent:
            await producer.put(item)

    everything = [item for items in received.values() for item in items]
    assert sorted(a.id for a in everything) == sorted(a.id for a in sent)
    assert all(received.values())  # every reader got work


async def test_many_readers_with_a_slow_producer(autojump_clock: trio.testing.MockClock) -> None:
    queue = DispatchQueue(2)
    queue.bump(SessionId(1))
    sent = [assignment(1, job) for job in range(20)]
    received: list[IssuedAssignment] = []

    async def reader() -> None:
        while (item := await queue.take(5.0)) is not None:
            received.append(item)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(reader)
        for item in sent:
            await trio.sleep(1.0)
            queue.put(item)

    assert [a.id for a in received] == [a.id for a in sent]  # FIFO, none lost


async def test_session_pairs_stay_consistent_under_bumps_with_many_readers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = DispatchQueue(8)
    queue.bump(SessionId(1))
    delivered: list[tuple[IssuedAssignment, SessionId]] = []

    async def reader() -> None:
        while (item := await queue.take(3.0)) is not None:
            # Each item comes out in the session the queue is in when it is delivered.
            delivered.append((item, queue.session))
            await trio.sleep(0.003)

    producer = Producer(queue)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(reader)
        for session in range(1, 6):
            if session > 1:
                queue.bump(SessionId(session))
            for _ in range(40):
                await producer.put(assignment(session))
            await trio.sleep(0.002)

    ids = [item.id for item, _ in delivered]
    assert len(ids) == len(set(ids))
    assert all(item.session == session for item, session in delivered)
    assert {item.session for item, _ in delivered} >= {5}


async def test_a_cancelled_take_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    queue = DispatchQueue(4)
    queue.bump(SessionId(1))
    with trio.move_on_after(1):
        await queue.take(10)
    item = assignment(1)
    queue.put(item)
    assert await queue.take(0) == item


async def test_taking_calls_on_take() -> None:
    taken: list[int] = []
    queue = DispatchQueue(4, on_take=lambda: taken.append(1))
    queue.bump(SessionId(1))
    queue.put(assignment(1))
    await queue.take(0)
    await queue.take(0)
    assert taken == [1]
