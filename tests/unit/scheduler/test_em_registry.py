"""``ExecutionManagerRegistry``: liveness, acknowledgements, rescheduling (cutoff 1 s, 50 ms)."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from spider.core.assignment import ConsumedAssignment
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
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.em_registry import ExecutionManagerRegistry
from spider.scheduler.errors import ExecutionManagerNotFound

OURS = SchedulerId(5)
EM = ExecutionManagerId(9)
IDS = itertools.count(1)


def assignment() -> IssuedAssignment:
    entry = ReadyTask(ResourceGroupId(1), JobId(1), TaskId.index(next(IDS)))
    return IssuedAssignment(AssignmentId(next(IDS)), entry, SessionId(1))


def ack(item: IssuedAssignment, issued_by: SchedulerId = OURS) -> ConsumedAssignment:
    return ConsumedAssignment(item.id, issued_by)


@pytest.fixture
def rescheduled() -> list[IssuedAssignment]:
    return []


@pytest.fixture
def registry(rescheduled: list[IssuedAssignment]) -> ExecutionManagerRegistry:
    return ExecutionManagerRegistry(1.0, rescheduled.append, {OURS})


async def test_assign_and_heartbeat_register_new_execution_managers(
    registry: ExecutionManagerRegistry,
) -> None:
    registry.heartbeat(ExecutionManagerId(1))
    registry.assign(ExecutionManagerId(2), first := assignment())
    registry.assign(ExecutionManagerId(2), second := assignment())

    assert ExecutionManagerId(1) in registry
    assert registry.outstanding(ExecutionManagerId(2)) == [first, second]


async def test_acknowledgements_clear_outstanding_and_are_idempotent(
    registry: ExecutionManagerRegistry,
) -> None:
    registry.assign(EM, item := assignment())

    assert registry.acknowledge(EM, ack(item))
    assert not registry.acknowledge(EM, ack(item))
    assert registry.outstanding(EM) == []


async def test_acknowledgements_from_another_scheduler_are_ignored(
    registry: ExecutionManagerRegistry,
) -> None:
    registry.assign(EM, item := assignment())

    assert not registry.acknowledge(EM, ack(item, SchedulerId(99)))
    assert registry.outstanding(EM) == [item]


async def test_shutdown_acknowledges_then_reschedules_the_rest(
    registry: ExecutionManagerRegistry, rescheduled: list[IssuedAssignment]
) -> None:
    a, b, c = assignment(), assignment(), assignment()
    for item in (a, b, c):
        registry.assign(EM, item)

    assert registry.shutdown(EM, [ack(a), ack(b)]) == 1

    assert rescheduled == [c]
    assert EM not in registry
    with pytest.raises(ExecutionManagerNotFound):
        registry.shutdown(EM, [])


async def test_idle_execution_managers_are_removed_after_the_cutoff(
    registry: ExecutionManagerRegistry,
    rescheduled: list[IssuedAssignment],
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry.assign(EM, item := assignment())
    registry.heartbeat(ExecutionManagerId(2))  # heartbeat-only EMs expire too
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.track_liveness, 0.05)
        await trio.sleep(0.96)
        assert EM in registry
        await trio.sleep(0.1)
        assert EM not in registry
        assert ExecutionManagerId(2) not in registry
        nursery.cancel_scope.cancel()

    assert rescheduled == [item]


async def test_heartbeats_acks_and_assigns_keep_execution_managers_alive(
    registry: ExecutionManagerRegistry,
    rescheduled: list[IssuedAssignment],
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = ExecutionManagerId(3)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.track_liveness, 0.05)
        for _ in range(10):
            registry.heartbeat(EM)
            registry.assign(worker, item := assignment())
            await trio.sleep(0.5)
            registry.acknowledge(worker, ack(item))
            await trio.sleep(0.4)
        assert EM in registry
        assert worker in registry
        nursery.cancel_scope.cancel()
    assert rescheduled == []


async def test_a_removed_execution_manager_comes_back_fresh(
    registry: ExecutionManagerRegistry, rescheduled: list[IssuedAssignment]
) -> None:
    registry.assign(EM, assignment())
    registry.shutdown(EM, [])
    registry.heartbeat(EM)
    assert EM in registry
    assert registry.outstanding(EM) == []


async def test_an_undelivered_assignment_is_taken_back_and_rescheduled_once(
    registry: ExecutionManagerRegistry, rescheduled: list[IssuedAssignment]
) -> None:
    lost, kept = assignment(), assignment()
    registry.assign(EM, lost)
    registry.assign(EM, kept)
    assert registry.take_back(EM, lost)
    assert rescheduled == [lost]
    assert registry.outstanding(EM) == [kept]
    # Already acknowledged or taken back, or the EM is gone: nothing more to do.
    assert not registry.take_back(EM, lost)
    registry.acknowledge(EM, ack(kept))
    assert not registry.take_back(EM, kept)
    assert not registry.take_back(ExecutionManagerId(77), kept)
    assert rescheduled == [lost]
