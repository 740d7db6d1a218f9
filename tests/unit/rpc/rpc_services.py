"""Small Trio implementations of Spider services, and helpers to run them over loopback."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import (
    HeartbeatRequest,
    NextTaskRequest,
    NextTaskResponse,
    SchedulerServiceBase,
)
from spider.proto.storage import GetSessionResponse, SessionManagementServiceBase

LOOPBACK = "127.0.0.1"
DEFAULT_SERVER = rpc.ServerConfig()

# Heartbeats from these execution manager ids make the test scheduler misbehave.
CRASHING_EM = 900
"""Its handler raises an unexpected ``ValueError``."""
WRONG_REPLY_EM = 901
"""Its handler returns something that is not a ``Void``."""
STATUS_EM_BASE = 1000
"""``STATUS_EM_BASE + code`` raises the ``RpcError`` of that status code."""


class RecordingScheduler(SchedulerServiceBase):
    """``SchedulerService`` in Trio: heartbeats answer at once (or fail on request), NextTask
    blocks until cancelled and reports what it saw through events."""

    def __init__(self) -> None:
        self.heartbeat_peers: list[tuple[str, int] | None] = []
        self.next_task_entered = trio.Event()
        self.next_task_cancelled = trio.Event()

    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        await trio.lowlevel.checkpoint()
        self.heartbeat_peers.append(rpc.current_peer())
        em = heartbeat_request.execution_manager_id
        if em == CRASHING_EM:
            raise ValueError("the test scheduler crashed on purpose")
        if em == WRONG_REPLY_EM:
            return "not a Void"  # type: ignore[return-value]
        if em > STATUS_EM_BASE:
            status = rpc.Status(em - STATUS_EM_BASE)
            raise rpc.error_for_status(status, f"test failure with {status.name}")
        return Void()

    async def next_task(self, next_task_request: NextTaskRequest) -> NextTaskResponse:
        self.next_task_entered.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.next_task_cancelled.set()
            raise


class FixedSession(SessionManagementServiceBase):
    """``SessionManagementService`` in Trio answering one session id, to tell servers apart."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id

    async def get_session(self, common_void: Void) -> GetSessionResponse:
        await trio.lowlevel.checkpoint()
        return GetSessionResponse(session_id=self.session_id)


@asynccontextmanager
async def running_server(
    services: list[rpc.ServiceBase],
    port: int = 0,
    config: rpc.ServerConfig = DEFAULT_SERVER,
    host: str = LOOPBACK,
) -> AsyncIterator[rpc.Endpoint]:
    """Serve ``services`` on loopback for the block; yield the endpoint."""
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            functools.partial(rpc.serve, config=config), services, host, port
        )
        yield rpc.Endpoint(LOOPBACK, bound)
        nursery.cancel_scope.cancel(reason="test is done with the server")


async def start_stoppable_server(
    nursery: trio.Nursery, services: list[rpc.ServiceBase]
) -> tuple[int, trio.CancelScope]:
    """Start ``serve`` on loopback in ``nursery``; return its port and a scope whose
    cancellation stops that server alone."""
    scope = trio.CancelScope()

    async def serve_until_stopped(task_status: trio.TaskStatus[int]) -> None:
        with scope:
            await rpc.serve(services, LOOPBACK, 0, task_status=task_status)

    port: int = await nursery.start(serve_until_stopped)
    return port, scope


class _EventOnRecord(logging.Handler):
    def __init__(self, event: trio.Event) -> None:
        super().__init__(logging.WARNING)
        self._event = event

    def emit(self, record: logging.LogRecord) -> None:
        self._event.set()


@contextmanager
def event_on_warning(logger_name: str) -> Iterator[trio.Event]:
    """An event set by the first WARNING (or worse) logged on ``logger_name`` in the block.

    Log calls happen in the Trio thread, so setting a ``trio.Event`` from the handler is safe.
    """
    event = trio.Event()
    handler = _EventOnRecord(event)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield event
    finally:
        logger.removeHandler(handler)
