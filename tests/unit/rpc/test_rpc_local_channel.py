"""``LocalChannel``: the contract of ``Channel.call`` with handlers called in process."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import HeartbeatRequest, NextTaskRequest, SchedulerServiceStub
from spider.proto.storage import SessionManagementServiceStub

from .rpc_services import (
    CRASHING_EM,
    STATUS_EM_BASE,
    WRONG_REPLY_EM,
    FixedSession,
    RecordingScheduler,
)


def channel(scheduler: RecordingScheduler | None = None) -> rpc.LocalChannel:
    services: list[rpc.ServiceBase] = [scheduler or RecordingScheduler(), FixedSession(7)]
    return rpc.LocalChannel(services, default_deadline=5.0)


async def test_calls_reach_the_handler_of_the_right_service() -> None:
    scheduler = RecordingScheduler()
    local = channel(scheduler)
    assert (
        await local.call(SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1))
        == Void()
    )
    session = await local.call(SessionManagementServiceStub.get_session, Void())
    assert session.session_id == 7
    assert scheduler.heartbeat_peers == [None]  # no peer in process


async def test_a_handler_error_reaches_the_caller_with_its_status() -> None:
    request = HeartbeatRequest(
        execution_manager_id=STATUS_EM_BASE + rpc.Status.FAILED_PRECONDITION.value
    )
    with pytest.raises(rpc.FailedPreconditionError):
        await channel().call(SchedulerServiceStub.heartbeat, request)


async def test_an_unexpected_exception_becomes_internal() -> None:
    with pytest.raises(rpc.InternalError, match="internal error while handling"):
        await channel().call(
            SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=CRASHING_EM)
        )


async def test_a_method_not_served_here_is_unimplemented() -> None:
    local = rpc.LocalChannel([FixedSession(1)], default_deadline=5.0)
    with pytest.raises(rpc.UnimplementedError):
        await local.call(SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1))


async def test_the_deadline_cancels_the_handler_and_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scheduler = RecordingScheduler()
    with pytest.raises(rpc.DeadlineExceededError):
        await channel(scheduler).call(
            SchedulerServiceStub.next_task, NextTaskRequest(execution_manager_id=1), deadline=2.0
        )
    assert scheduler.next_task_cancelled.is_set()
    assert trio.current_time() == pytest.approx(2.0)


async def test_cancelling_the_caller_cancels_the_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scheduler = RecordingScheduler()
    with trio.move_on_after(1.0):
        await channel(scheduler).call(
            SchedulerServiceStub.next_task, NextTaskRequest(execution_manager_id=1)
        )
    assert scheduler.next_task_cancelled.is_set()


async def test_a_reply_of_the_wrong_type_becomes_internal() -> None:
    with pytest.raises(rpc.InternalError):
        await channel().call(
            SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=WRONG_REPLY_EM)
        )
