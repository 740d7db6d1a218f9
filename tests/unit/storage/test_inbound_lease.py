"""The acknowledged inbound poll: each lane's last answer is leased until the next poll names it.

An answer that never reached the scheduler (its poll gave up, the network dropped it) is not
acknowledged, so its entries come back first, in order, in the next poll's answer; an
acknowledged one is done with. Batch numbers count within one storage session. Time is Trio's
mock clock.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.core.ids import JobId, ResourceGroupId, SessionId
from spider.core.ready_task import ReadyTask
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.storage import Lane, StorageState
from spider.storage.config import InboundQueueConfig
from spider.storage.inbound_queue import NO_BATCH, InboundQueue, LeasedBatch

from .fake_database import FakeDatabase
from .jobs import create_state, drain, new_group, submission, summing_task

GROUP = ResourceGroupId(1)
WAIT_MS = 30_000


def task_of(lane: Lane, job: int) -> TaskId:
    """The task ``lane`` carries for ``job`` (index task ``job`` on the task lane)."""
    return {Lane.TASK: TaskId.index(job), Lane.COMMIT: TaskId.COMMIT}.get(lane, TaskId.CLEANUP)


def lanes() -> InboundQueue:
    return InboundQueue.from_config(InboundQueueConfig(100, 100, 100))


def put(queue: InboundQueue, lane: Lane, *jobs: int) -> list[ReadyTask]:
    """One entry of ``lane`` per job (index task ``job`` on the task lane)."""
    entries = [ReadyTask(GROUP, JobId(job), task_of(lane, job)) for job in jobs]
    for entry in entries:
        queue.put(entry.resource_group_id, entry.job_id, entry.task_id)
    return entries


async def receive(
    queue: InboundQueue, lane: Lane, max_items: int, acknowledged: int
) -> LeasedBatch:
    """``receive_leased``, failing (at once, on the mock clock) instead of waiting forever."""
    with trio.fail_after(WAIT_MS / 1000):
        return await queue.receive_leased(lane, max_items, acknowledged)


@pytest.mark.parametrize("lane", list(Lane))
async def test_a_lost_answer_is_offered_again_first_and_in_order(
    lane: Lane, autojump_clock: trio.testing.MockClock
) -> None:
    queue = lanes()
    first = put(queue, lane, 1, 2, 3)
    lost = await receive(queue, lane, 2, NO_BATCH)
    assert lost.entries == tuple(first[:2])
    newer = put(queue, lane, 4)
    again = await receive(queue, lane, 10, NO_BATCH)  # the scheduler never saw ``lost``
    assert again.entries == (*first, *newer)
    assert again.batch > lost.batch


@pytest.mark.parametrize("lane", list(Lane))
async def test_an_acknowledged_answer_is_not_offered_again(
    lane: Lane, autojump_clock: trio.testing.MockClock
) -> None:
    queue = lanes()
    put(queue, lane, 1, 2)
    received = await receive(queue, lane, 10, NO_BATCH)
    newer = put(queue, lane, 3)
    assert (await receive(queue, lane, 10, received.batch)).entries == tuple(newer)


@pytest.mark.parametrize("lane", list(Lane))
async def test_an_older_batch_does_not_acknowledge_the_newest(
    lane: Lane, autojump_clock: trio.testing.MockClock
) -> None:
    queue = lanes()
    put(queue, lane, 1)
    received = await receive(queue, lane, 10, NO_BATCH)
    newest = put(queue, lane, 2)
    lost = await receive(queue, lane, 10, received.batch)
    assert lost.entries == tuple(newest)
    assert (await receive(queue, lane, 10, received.batch)).entries == tuple(newest)


async def test_an_entry_waiting_again_in_the_lane_is_not_offered_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = lanes()
    first = put(queue, Lane.TASK, 1, 2)
    await receive(queue, Lane.TASK, 10, NO_BATCH)
    put(queue, Lane.TASK, 2)  # a resend enqueued it again meanwhile
    again = await receive(queue, Lane.TASK, 10, NO_BATCH)
    assert sorted(entry.job_id for entry in again.entries) == [1, 2]
    assert again.entries[0] == first[0]


async def test_a_lease_another_poll_took_while_this_one_waited_comes_to_this_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The scheduler gave up on a poll storage was still waiting in, and polled again: the
    # entry the abandoned poll took reaches the poll the scheduler is waiting for.
    queue = lanes()
    answers: dict[str, LeasedBatch] = {}

    async def poll(name: str) -> None:
        answers[name] = await receive(queue, Lane.TASK, 10, NO_BATCH)

    with trio.fail_after(WAIT_MS / 1000):  # the mock clock's: fails at once, does not hang
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll, "abandoned")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(poll, "current")
            await trio.testing.wait_all_tasks_blocked()
            entries = put(queue, Lane.TASK, 1)
    assert answers["abandoned"].entries == tuple(entries)
    assert answers["current"].entries == tuple(entries)


async def test_an_empty_answer_or_a_cancelled_poll_leases_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = lanes()
    with trio.move_on_after(1):  # cancelled while waiting
        await receive(queue, Lane.TASK, 10, NO_BATCH)
    assert (await receive(queue, Lane.TASK, 0, NO_BATCH)) == LeasedBatch(NO_BATCH, ())
    entries = put(queue, Lane.TASK, 1)
    assert (await receive(queue, Lane.TASK, 10, NO_BATCH)).entries == tuple(entries)


# --- through StorageState: sessions, tasks that moved on, waits ------------------------------


async def started_job(tasks: int) -> tuple[StorageState, JobId]:
    database = FakeDatabase()
    state = await create_state(database)
    graph = TaskGraph()
    for _ in range(tasks):
        graph.insert_task(summing_task(1, 1))
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, [1] * tasks)
    )
    await state.lifecycle.start_job(job_id)
    return state, job_id


async def poll(
    state: StorageState, acknowledged: int = NO_BATCH, session: SessionId | None = None
) -> tuple[int, list[int]]:
    answer = await state.poll_ready_tasks_acknowledged(
        Lane.TASK, 10, WAIT_MS, state.session if session is None else session, acknowledged
    )
    assert answer.session_id == state.session
    return answer.batch, [entry.task_id.position or 0 for entry in answer.tasks]


async def test_a_lost_answer_comes_back_at_once_in_the_next_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await started_job(3)
    first, entries = await poll(state)
    assert entries == [0, 1, 2]
    assert await poll(state) == (first + 1, [0, 1, 2])
    assert trio.current_time() == 0  # answered without waiting


async def test_an_acknowledged_answer_leaves_the_next_poll_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await started_job(2)
    batch, _ = await poll(state)
    assert await poll(state, batch) == (NO_BATCH, [])
    assert trio.current_time() == pytest.approx(WAIT_MS / 1000)


async def test_a_batch_of_another_session_acknowledges_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await started_job(2)
    batch, _ = await poll(state)
    other = SessionId(state.session + 1)
    assert (await poll(state, batch, session=other))[1] == [0, 1]


async def test_a_task_started_meanwhile_is_not_offered_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, job_id = await started_job(3)
    await poll(state)
    worker = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    await state.lifecycle.register_task_instance(job_id, TaskId.index(1), worker, state.session)
    assert (await poll(state))[1] == [0, 2]


async def test_a_replacement_schedulers_resend_and_the_lease_offer_each_task_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await started_job(2)
    await state.register_scheduler("10.0.0.2", 6000)
    await poll(state)
    await state.register_scheduler("10.0.0.3", 6000)  # a replacement: all ready work again
    assert (await poll(state))[1] == [0, 1]
    assert await drain(state) == []
