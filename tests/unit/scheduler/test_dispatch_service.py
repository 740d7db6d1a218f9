"""``TaskDispatchService.NextTasks`` handler, called directly (the wire is tested in integration)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
)
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId
from spider.proto import scheduler as scheduler_pb
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import _server
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.core import SchedulerIdentity
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.dispatch_service import TaskDispatchService
from spider.scheduler.em_registry import ExecutionManagerRegistry

EM = ExecutionManagerId(4)
SCHEDULER = SchedulerId(8)


class Harness:
    def __init__(self) -> None:
        self.queue = DispatchQueue(8)
        self.queue.bump(SessionId(2))
        self.rescheduled: list[IssuedAssignment] = []
        identity = SchedulerIdentity()
        identity.adopt(SCHEDULER)
        self.registry = ExecutionManagerRegistry(30.0, self.rescheduled.append, identity.own_ids)
        self.service = TaskDispatchService(self.queue, self.registry, identity)
        self.next_id = 1

    def offer(self, count: int = 1) -> list[IssuedAssignment]:
        items = []
        for _ in range(count):
            item = IssuedAssignment(
                AssignmentId(self.next_id),
                ReadyTask(ResourceGroupId(3), JobId(6), TaskId.index(self.next_id)),
                SessionId(2),
            )
            self.next_id += 1
            self.queue.put(item)
            items.append(item)
        return items

    async def next_tasks(
        self, *, wait_ms: int = 0, max_tasks: int = 4, acks: tuple[int, ...] = ()
    ) -> execution_pb.NextTasksResponse:
        return await self.service.next_tasks(
            execution_pb.NextTasksRequest(
                execution_manager_id=EM,
                wait_time_ms=wait_ms,
                max_tasks=max_tasks,
                prev_assignments=[
                    scheduler_pb.TaskAssignmentRecord(id=ack, **{"from": SCHEDULER}) for ack in acks
                ],
            )
        )


async def test_an_empty_queue_is_answered_empty_after_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    harness = Harness()
    response = await harness.next_tasks(wait_ms=1500)
    assert response.assignments == []
    assert trio.current_time() == pytest.approx(1.5)


async def test_it_answers_what_is_ready_up_to_max_tasks_and_records_each() -> None:
    harness = Harness()
    items = harness.offer(5)
    response = await harness.next_tasks(max_tasks=3)
    assert [a.id for a in response.assignments] == [1, 2, 3]
    assert {a.scheduler_id for a in response.assignments} == {SCHEDULER}
    assert [a.task_id.index for a in response.assignments] == [1, 2, 3]
    assert {a.session_id for a in response.assignments} == {2}
    assert harness.registry.outstanding(EM) == items[:3]
    assert len(harness.queue) == 2


async def test_max_tasks_zero_means_one() -> None:
    harness = Harness()
    harness.offer(2)
    response = await harness.next_tasks(max_tasks=0)
    assert [a.id for a in response.assignments] == [1]


async def test_the_long_poll_returns_the_first_arrival_with_whatever_else_is_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    harness = Harness()
    async with trio.open_nursery() as nursery:

        async def offer_later() -> None:
            await trio.sleep(0.3)
            harness.offer(2)

        nursery.start_soon(offer_later)
        response = await harness.next_tasks(wait_ms=5000)
    assert [a.id for a in response.assignments] == [1, 2]
    assert trio.current_time() == pytest.approx(0.3)


async def test_every_previous_record_is_acknowledged() -> None:
    harness = Harness()
    harness.offer(3)
    await harness.next_tasks(max_tasks=3)
    response = await harness.next_tasks(acks=(1, 3))
    assert response.assignments == []
    assert [a.id for a in harness.registry.outstanding(EM)] == [2]


async def test_an_undelivered_answer_hands_back_all_its_assignments() -> None:
    harness = Harness()
    items = harness.offer(3)
    callbacks: list[_server.UndeliveredCallback] = []
    token = _server._undelivered.set(callbacks)  # as serve sets it for a call
    try:
        await harness.next_tasks(max_tasks=3)
    finally:
        _server._undelivered.reset(token)
    assert harness.registry.outstanding(EM) == items
    (callback,) = callbacks
    callback()  # the answer never left
    assert harness.registry.outstanding(EM) == []
    assert harness.rescheduled == items
