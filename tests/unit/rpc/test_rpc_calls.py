"""Trio client calling a Trio server over real gRPC on loopback.

Real sockets mean real time: these tests use Trio's real clock, and time only appears as bounds
(``fail_after``, call deadlines) that a broken feature would hit, never as the thing asserted.
"""

from __future__ import annotations

import math
import socket

import pytest
import trio

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import (
    HeartbeatRequest,
    NextTaskRequest,
    SchedulerServiceStub,
    ShutdownRequest,
)

from .rpc_services import (
    CRASHING_EM,
    STATUS_EM_BASE,
    WRONG_REPLY_EM,
    FixedSession,
    RecordingScheduler,
    running_server,
)

# Bounds for waits that only a broken feature would reach.
TEST_BOUND = 10.0


async def test_unary_call_returns_the_handlers_reply() -> None:
    scheduler = RecordingScheduler()
    async with running_server([scheduler]) as endpoint, rpc.connect_channel(endpoint) as channel:
        reply = await channel.call(
            SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=7)
        )

    assert reply == Void()
    assert len(scheduler.heartbeat_peers) == 1
    assert channel.endpoint == endpoint


@pytest.mark.parametrize(
    "status",
    [status for status in rpc.Status if status is not rpc.Status.OK],
    ids=lambda status: status.name,
)
async def test_handler_errors_reach_the_client_with_status_and_message(status: rpc.Status) -> None:
    async with (
        running_server([RecordingScheduler()]) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with pytest.raises(rpc.RpcError) as caught:
            await channel.call(
                SchedulerServiceStub.heartbeat,
                HeartbeatRequest(execution_manager_id=STATUS_EM_BASE + status.value),
            )

    assert caught.value.status is status
    assert type(caught.value) is type(rpc.error_for_status(status, ""))
    assert caught.value.message == f"test failure with {status.name}"
    assert caught.value.method == "/scheduler.SchedulerService/Heartbeat"


async def test_unexpected_handler_exception_is_internal_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        running_server([RecordingScheduler()]) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with pytest.raises(rpc.InternalError) as caught:
            await channel.call(
                SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=CRASHING_EM)
            )
        after = await channel.call(
            SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
        )

    assert "internal error while handling /scheduler.SchedulerService/Heartbeat" in str(
        caught.value
    )
    assert "crashed on purpose" not in caught.value.message, "server internals must not leak"
    assert after == Void()
    [logged] = [
        record for record in caplog.records if record.name == "spider.rpc" and record.exc_info
    ]
    assert logged.levelname == "ERROR"
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], ValueError)
    assert logged.__dict__["rpc_method"] == "/scheduler.SchedulerService/Heartbeat"


async def test_a_reply_of_the_wrong_type_is_internal() -> None:
    async with (
        running_server([RecordingScheduler()]) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with pytest.raises(rpc.InternalError):
            await channel.call(
                SchedulerServiceStub.heartbeat,
                HeartbeatRequest(execution_manager_id=WRONG_REPLY_EM),
            )


async def test_a_method_the_service_does_not_override_is_unimplemented() -> None:
    async with (
        running_server([RecordingScheduler()]) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with pytest.raises(rpc.UnimplementedError):
            await channel.call(
                SchedulerServiceStub.shutdown, ShutdownRequest(execution_manager_id=1)
            )


async def test_a_route_no_service_serves_is_unimplemented() -> None:
    # Only the session service is served: the scheduler's route is unknown to this server.
    async with (
        running_server([FixedSession(3)]) as endpoint,
        rpc.connect_channel(endpoint) as channel,
    ):
        with pytest.raises(rpc.UnimplementedError, match="not served"):
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())


async def test_cancelling_the_caller_cancels_the_server_handler() -> None:
    scheduler = RecordingScheduler()
    async with running_server([scheduler]) as endpoint, rpc.connect_channel(endpoint) as channel:
        with trio.fail_after(TEST_BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(channel.call, SchedulerServiceStub.next_task, NextTaskRequest())
                await scheduler.next_task_entered.wait()
                nursery.cancel_scope.cancel(reason="the test cancels the caller")
            await scheduler.next_task_cancelled.wait()
            # The stream was reset, not the connection: the channel still works.
            assert (
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )
                == Void()
            )


async def test_deadline_expiry_raises_deadline_exceeded_and_cancels_the_handler() -> None:
    scheduler = RecordingScheduler()
    async with running_server([scheduler]) as endpoint, rpc.connect_channel(endpoint) as channel:
        with trio.fail_after(TEST_BOUND):
            with pytest.raises(rpc.DeadlineExceededError) as caught:
                await channel.call(SchedulerServiceStub.next_task, NextTaskRequest(), deadline=0.2)
            await scheduler.next_task_cancelled.wait()

    assert caught.value.is_transient
    assert caught.value.method == "/scheduler.SchedulerService/NextTask"


async def test_the_config_default_deadline_applies_when_the_call_names_none() -> None:
    scheduler = RecordingScheduler()
    config = rpc.RpcConfig(default_deadline=0.2)
    async with (
        running_server([scheduler]) as endpoint,
        rpc.connect_channel(endpoint, config) as channel,
    ):
        with trio.fail_after(TEST_BOUND), pytest.raises(rpc.DeadlineExceededError):
            await channel.call(SchedulerServiceStub.next_task, NextTaskRequest())


async def test_the_pool_spreads_calls_round_robin_over_its_connections() -> None:
    scheduler = RecordingScheduler()
    config = rpc.RpcConfig(connection_pool_size=3)
    async with (
        running_server([scheduler]) as endpoint,
        rpc.connect_channel(endpoint, config) as channel,
    ):
        for em in range(6):
            await channel.call(
                SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=em)
            )

    peers = scheduler.heartbeat_peers
    assert len(set(peers)) == 3, "three connections, so three client ports"
    assert peers[:3] == peers[3:], "each connection is used in turn"


async def test_a_server_that_is_not_up_is_unavailable() -> None:
    with socket.socket() as probe:
        # Bind without listening: the port is ours, and connecting to it is refused.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        async with rpc.connect_channel(rpc.Endpoint("127.0.0.1", port)) as channel:
            with pytest.raises(rpc.UnavailableError) as caught:
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )

    assert caught.value.is_transient


@pytest.mark.parametrize("deadline", [0.0, -1.0, math.inf, math.nan])
async def test_a_deadline_must_be_positive_and_finite(deadline: float) -> None:
    async with rpc.connect_channel(rpc.Endpoint("127.0.0.1", 9)) as channel:
        with pytest.raises(ValueError, match="positive, finite"):
            await channel.call(
                SchedulerServiceStub.heartbeat,
                HeartbeatRequest(execution_manager_id=1),
                deadline=deadline,
            )


async def test_call_takes_only_generated_methods() -> None:
    not_a_method = "/scheduler.SchedulerService/Heartbeat"
    async with rpc.connect_channel(rpc.Endpoint("127.0.0.1", 9)) as channel:
        with pytest.raises(TypeError, match=r"SchedulerServiceStub\.next_task"):
            await channel.call(not_a_method, HeartbeatRequest(execution_manager_id=1))  # type: ignore[arg-type]
