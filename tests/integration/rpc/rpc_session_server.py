"""A storage ``SessionManagementService`` in its own process, for the restart test.

Usage: ``python rpc_session_server.py PORT SESSION_ID``. Serves on 127.0.0.1:PORT (0 = pick one),
answers every GetSession with SESSION_ID, and writes the bound port and a newline to stdout once
it accepts connections. Runs until killed.
"""

from __future__ import annotations

import sys

import trio

from spider import rpc
from spider.proto.common import Void
from spider.proto.storage import GetSessionResponse, SessionManagementServiceBase


class FixedSession(SessionManagementServiceBase):
    def __init__(self, session_id: int) -> None:
        self.session_id = session_id

    async def get_session(self, common_void: Void) -> GetSessionResponse:
        await trio.lowlevel.checkpoint()
        return GetSessionResponse(session_id=self.session_id)


async def main(port: int, session_id: int) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(rpc.serve, [FixedSession(session_id)], "127.0.0.1", port)
        sys.stdout.write(f"{bound}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
