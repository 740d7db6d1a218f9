"""``SchedulerService`` handlers, called directly (the wire is tested in integration)."""

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
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.rpc import NotFoundError
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.core import SchedulerIdentity
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.em_registry import ExecutionManagerRegistry
from spider.scheduler.service import SchedulerService

EM = 4
SCHEDULER = SchedulerId(8)
FIRST_TASK = TaskId.index(0)


class Harness:
    def __init__(self) -> None:
        self.queue = DispatchQueue(4)
        self.queue.bump(SessionId(2))
        self.rescheduled: list[IssuedAssignment] = []
        identity = SchedulerIdentity()
        identity.adopt(SCHEDULER)
        self.registry = ExecutionManagerRegistry(30.0, self.rescheduled.append, identity.own_ids)
        self.service = SchedulerService(self.queue, self.registry, identity)
        self.next_id = 1

    def offer(self, task_id: TaskId = FIRST_TASK) -> IssuedAssignment:
        item = IssuedAssignment(
            AssignmentId(self.next_id),
            ReadyTask(ResourceGroupId(3), JobId(6), task_id),
            SessionId(2),
        )
        self.next_id += 1
        self.queue.put(item)
        return item

    async def next_task(
        self, wait_ms: int = 0, ack: int | None = None
    ) -> scheduler_pb.NextTaskResponse:
        request = scheduler_pb.NextTaskRequest(execution_manager_id=EM, wait_time_ms=wait_ms)
        if ack is not None:
            request.prev_assignment.CopyFrom(
                scheduler_pb.TaskAssignmentRecord(id=ack, **{"from": SCHEDULER})
            )
        return await self.service.next_task(request)


async def test_next_task_answers_no_task_when_the_queue_stays_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    harness = Harness()
    response = await harness.next_task(wait_ms=1000)
    assert response.no_task == common.Void()
    assert trio.current_time() == pytest.approx(1.0)  # it honoured the EM's wait


async def test_next_task_assigns_and_records_the_assignment() -> None:
    harness = Harness()
    item = harness.offer(TaskId.COMMIT)

    response = await harness.next_task()

    assert response.assignment == scheduler_pb.SchedulerAssignment(
        id=item.id,
        resource_group_id=3,
        job_id=6,
        task_id=common.TaskId(commit=common.Void()),
        scheduler_id=SCHEDULER,
        session_id=2,
    )
    assert harness.registry.outstanding(ExecutionManagerId(EM)) == [item]
    # Shutdown without acknowledging it gives it back to the core.
    await harness.service.shutdown(scheduler_pb.ShutdownRequest(execution_manager_id=EM))
    assert harness.rescheduled == [item]


async def test_the_next_call_acknowledges_the_previous_assignment() -> None:
    harness = Harness()
    item = harness.offer()
    await harness.next_task()

    await harness.next_task(ack=item.id)

    assert harness.registry.outstanding(ExecutionManagerId(EM)) == []


async def test_heartbeat_registers_the_execution_manager() -> None:
    harness = Harness()
    await harness.service.heartbeat(scheduler_pb.HeartbeatRequest(execution_manager_id=EM))
    assert ExecutionManagerId(EM) in harness.registry


async def test_shutdown_acknowledges_the_records_and_reschedules_the_rest() -> None:
    harness = Harness()
    a, b, c = harness.offer(), harness.offer(), harness.offer()
    for _ in range(3):
        await harness.next_task()

    await harness.service.shutdown(
        scheduler_pb.ShutdownRequest(
            execution_manager_id=EM,
            prev_assignments=[
                scheduler_pb.TaskAssignmentRecord(id=a.id, **{"from": SCHEDULER}),
                scheduler_pb.TaskAssignmentRecord(id=b.id, **{"from": SCHEDULER}),
            ],
        )
    )

    assert harness.rescheduled == [c]


async def test_shutdown_of_an_unknown_execution_manager_is_not_found() -> None:
    harness = Harness()
    with pytest.raises(NotFoundError, match="execution manager not found"):
        await harness.service.shutdown(scheduler_pb.ShutdownRequest(execution_manager_id=EM))
