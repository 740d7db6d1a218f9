"""``serve``: readiness, shutdown, restart on the same port, and what it refuses to serve.

Real loopback sockets, so Trio's real clock; time only bounds waits (see test_rpc_calls.py).
"""

from __future__ import annotations

import contextvars
import logging
import socket

import pytest
import trio

from spider import rpc
from spider.core.backoff import Backoff
from spider.proto.common import Void
from spider.proto.scheduler import (
    HeartbeatRequest,
    NextTaskRequest,
    NextTaskResponse,
    SchedulerServiceBase,
    SchedulerServiceStub,
)
from spider.proto.storage import SessionManagementServiceStub

from .rpc_services import (
    LOOPBACK,
    FixedSession,
    RecordingScheduler,
    event_on_warning,
    start_stoppable_server,
)

TEST_BOUND = 10.0
FAST_RETRY = Backoff(initial=0.01, multiplier=2.0, cap=0.1, max_attempts=1000)


async def test_started_reports_the_port_picked_for_port_zero() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(rpc.serve, [RecordingScheduler()], LOOPBACK, 0)
        assert isinstance(port, int)
        assert port > 0
        async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
            assert (
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )
                == Void()
            )
        nursery.cancel_scope.cancel()


async def test_one_server_serves_several_services() -> None:
    async with trio.open_nursery() as nursery:
        services: list[rpc.ServiceBase] = [RecordingScheduler(), FixedSession(4)]
        port = await nursery.start(rpc.serve, services, LOOPBACK, 0)
        async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
            session = await channel.call(SessionManagementServiceStub.get_session, Void())
            beat = await channel.call(
                SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
            )
        nursery.cancel_scope.cancel()

    assert session.session_id == 4
    assert beat == Void()


async def test_stopping_cancels_running_handlers_and_drops_connections() -> None:
    scheduler = RecordingScheduler()
    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as outer:
            port, server_scope = await start_stoppable_server(outer, [scheduler])
            async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
                # Warm the connection up, so that what follows uses an established connection.
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )
                in_flight: list[BaseException] = []

                async def call_next_task() -> None:
                    try:
                        await channel.call(SchedulerServiceStub.next_task, NextTaskRequest())
                    except rpc.RpcError as error:
                        in_flight.append(error)

                async with trio.open_nursery() as callers:
                    callers.start_soon(call_next_task)
                    await scheduler.next_task_entered.wait()
                    server_scope.cancel(reason="the test stops the server")
                await scheduler.next_task_cancelled.wait()

                # The old connection must not be served by a stopped server.
                with pytest.raises(rpc.UnavailableError):
                    await channel.call(
                        SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=2)
                    )

    [error] = in_flight
    assert isinstance(error, rpc.UnavailableError)
    assert len(scheduler.heartbeat_peers) == 1


async def test_a_client_retrying_survives_a_server_restart_on_the_same_port() -> None:
    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as outer:
            port, first_scope = await start_stoppable_server(outer, [FixedSession(1)])
            endpoint = rpc.Endpoint(LOOPBACK, port)
            async with rpc.connect_channel(endpoint) as channel:
                before = await channel.call(SessionManagementServiceStub.get_session, Void())
                first_scope.cancel(reason="the first server goes down")

                sessions: list[int] = []

                async def get_session_with_retry() -> None:
                    reply = await channel.call(
                        SessionManagementServiceStub.get_session, Void(), retry=FAST_RETRY
                    )
                    sessions.append(reply.session_id)

                with event_on_warning("spider.rpc") as retrying:
                    async with trio.open_nursery() as callers:
                        callers.start_soon(get_session_with_retry)
                        # Restart only once the client has failed at least once.
                        await retrying.wait()
                        await outer.start(rpc.serve, [FixedSession(2)], LOOPBACK, port)
            outer.cancel_scope.cancel()

    assert before.session_id == 1
    assert sessions == [2]


async def test_a_busy_port_is_a_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(rpc.ListenError, match=f"{LOOPBACK}:{port}"):
            await rpc.serve([RecordingScheduler()], LOOPBACK, port)


async def test_an_unresolvable_host_is_a_listen_error() -> None:
    with pytest.raises(rpc.ListenError, match=r"no-such-host\.invalid"):
        await rpc.serve([RecordingScheduler()], "no-such-host.invalid", 0)


class _HandWrittenService:
    async def heartbeat(self, request: HeartbeatRequest) -> Void:  # pragma: no cover
        return Void()


async def test_only_generated_services_are_served() -> None:
    with pytest.raises(TypeError, match="generated service base class"):
        await rpc.serve([_HandWrittenService()], LOOPBACK, 0)  # type: ignore[list-item]


async def test_serving_and_stopping_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spider.rpc")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(rpc.serve, [RecordingScheduler()], LOOPBACK, 0)
        async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
            for _ in range(3):
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )
            with pytest.raises(rpc.UnimplementedError):
                await channel.call(SessionManagementServiceStub.get_session, Void())
        nursery.cancel_scope.cancel()

    messages = [record for record in caplog.records if record.name == "spider.rpc"]
    assert [record.getMessage() for record in messages] == [
        f"serving RecordingScheduler on {LOOPBACK} port {port}",
        f"stopped serving on port {port} after 3 calls",
    ]
    assert messages[0].__dict__["rpc_port"] == port
    # Calls to routes nobody serves are answered UNIMPLEMENTED and not counted.
    assert messages[1].__dict__["rpc_calls"] == {SchedulerServiceStub.heartbeat.route: 3}


class HandingOverScheduler(SchedulerServiceBase):
    """``NextTask`` hands something over (``on_undelivered`` takes it back), but only once the
    test releases it, shielded, so the client's deadline can pass while it is running."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()
        self.taken_back: list[int] = []
        self.took_back = trio.Event()
        self.registered: list[bool] = []

    async def next_task(self, next_task_request: NextTaskRequest) -> NextTaskResponse:
        self.entered.set()
        with trio.CancelScope(shield=True):
            await self.release.wait()
        em = next_task_request.execution_manager_id
        self.registered.append(rpc.on_undelivered(lambda: self._take_back(em)))
        return NextTaskResponse(no_task=Void())

    def _take_back(self, em: int) -> None:
        self.taken_back.append(em)
        self.took_back.set()


async def test_a_response_that_never_leaves_runs_the_on_undelivered_callbacks() -> None:
    scheduler = HandingOverScheduler()
    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(rpc.serve, [scheduler], LOOPBACK, 0)
            async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
                # Delivered: the callback is registered and never runs.
                scheduler.release.set()
                await channel.call(
                    SchedulerServiceStub.next_task, NextTaskRequest(execution_manager_id=1)
                )
                # Not delivered: the deadline passes while the handler is still working. The
                # server learns of it through the client's reset or its own deadline, and the
                # request must reach the handler before the deadline passes there: 1 s leaves a
                # loaded machine room for that.
                scheduler.entered = trio.Event()
                scheduler.release = trio.Event()
                with pytest.raises(rpc.DeadlineExceededError):
                    await channel.call(
                        SchedulerServiceStub.next_task,
                        NextTaskRequest(execution_manager_id=2),
                        deadline=1.0,
                    )
                await scheduler.entered.wait()
                scheduler.release.set()
                await scheduler.took_back.wait()
            nursery.cancel_scope.cancel()
    assert scheduler.registered == [True, True]
    assert scheduler.taken_back == [2]


async def test_on_undelivered_outside_a_served_call_does_nothing() -> None:
    assert rpc.on_undelivered(lambda: None) is False


_SERVE_CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("test_serve_context")


class _ContextReporter(SchedulerServiceBase):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def heartbeat(self, request: HeartbeatRequest) -> Void:
        self.seen.append(_SERVE_CONTEXT.get("<not serve's context>"))
        return Void()


async def test_handlers_run_in_the_context_of_the_serve_that_started_them() -> None:
    reporter = _ContextReporter()
    _SERVE_CONTEXT.set("set around serve")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(rpc.serve, [reporter], LOOPBACK, 0)
        _SERVE_CONTEXT.set("changed after serve started")
        async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
        nursery.cancel_scope.cancel()
    # The value serve saw when it started (nursery.start copies the starter's context).
    assert reporter.seen == ["set around serve"]
