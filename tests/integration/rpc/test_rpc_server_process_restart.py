"""A client survives its server's process being killed and restarted on the same port.

Real processes and real gRPC over loopback, so Trio's real clock; time only bounds the test.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import trio

from spider import rpc
from spider.core.backoff import Backoff
from spider.proto.common import Void
from spider.proto.storage import SessionManagementServiceStub

SERVER_SCRIPT = Path(__file__).with_name("rpc_session_server.py")
LOOPBACK = "127.0.0.1"
TEST_BOUND = 60.0
RETRY = Backoff(initial=0.02, multiplier=2.0, cap=0.25, max_attempts=1000)


async def _start_server(
    nursery: trio.Nursery, port: int, session_id: int
) -> tuple[trio.Process, int]:
    """Start the server process; return it and the port it reported once listening."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [sys.executable, str(SERVER_SCRIPT), str(port), str(session_id)],
            stdout=subprocess.PIPE,
            check=False,
        )
    )
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await process.stdout.receive_some()
        assert chunk, f"server exited with {await process.wait()} before reporting its port"
        line += chunk
    return process, int(line)


class _SetOnWarning(logging.Handler):
    def __init__(self, event: trio.Event) -> None:
        super().__init__(logging.WARNING)
        self._event = event

    def emit(self, record: logging.LogRecord) -> None:
        self._event.set()


@contextmanager
def _retry_logged() -> Iterator[trio.Event]:
    event = trio.Event()
    handler = _SetOnWarning(event)
    logging.getLogger("spider.rpc").addHandler(handler)
    try:
        yield event
    finally:
        logging.getLogger("spider.rpc").removeHandler(handler)


async def test_a_client_retrying_survives_a_server_process_restart() -> None:
    sessions: list[int] = []
    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as servers:
            first, port = await _start_server(servers, 0, session_id=1)
            async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
                before = await channel.call(SessionManagementServiceStub.get_session, Void())
                first.kill()
                await first.wait()

                async def get_session() -> None:
                    reply = await channel.call(
                        SessionManagementServiceStub.get_session, Void(), retry=RETRY
                    )
                    sessions.append(reply.session_id)

                with _retry_logged() as retrying:
                    async with trio.open_nursery() as callers:
                        callers.start_soon(get_session)
                        # Bring the server back only after the client has seen it gone.
                        await retrying.wait()
                        _, again = await _start_server(servers, port, session_id=2)
            servers.cancel_scope.cancel(reason="test done")

    assert before.session_id == 1
    assert again == port
    assert sessions == [2]
