"""The liveness loop: heartbeats to storage, the only writer of the EM's ``SessionTracker``.

A heartbeat goes out at start, then one period after the previous one ended; ``refresh()``
(a newer session seen on an assignment, a stale-session rejection) wakes the loop for an
immediate one. Requests made while a heartbeat is in flight coalesce into one more heartbeat
right after it, since that heartbeat may have left before storage changed session.

Storage answering ``IllegalId``, or a session older than the tracker's, means this EM must not
go on: the loop raises ``LivenessLost``, a ``FatalError`` that ``supervise`` does not restart;
the runtime turns it into a forced stop. ``MarkedDead`` raises ``DeclaredDead`` (a
``LivenessLost``): the runtime ends this registration's life and registers again, or stops if
``on_declared_dead: exit`` (spider/em/life.py). Any other failure is logged and the next period
tries again.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import attrs
import trio
from trio_util import AsyncValue

from spider.core import SessionRegressionError, SessionTracker
from spider.core.ids import ExecutionManagerId
from spider.em.errors import DeclaredDead, EmClientError, IllegalId, LivenessLost, MarkedDead
from spider.em.ports import LivenessClient

LOGGER: Final = logging.getLogger("spider.em")


@attrs.define(eq=False)
class LivenessLoop:
    """Heartbeats to storage every ``period`` seconds (after the previous one ended)."""

    client: LivenessClient
    em_id: ExecutionManagerId
    tracker: SessionTracker
    period: float
    answered_at: float = attrs.field(factory=trio.current_time)
    """When the last heartbeat storage accepted was sent (at first: when the loop was made,
    right after the registration), in ``trio.current_time()`` terms: how long a dead EM was
    gone. The sending time, not the answer's: an answer read late (the EM was paused with it
    in its socket) would otherwise hide the silence that made storage declare the EM dead."""
    _refreshes: AsyncValue = attrs.field(factory=lambda: AsyncValue(0), init=False)
    """How many heartbeats were asked for out of turn (``refresh``)."""

    def refresh(self) -> None:
        """Ask for a heartbeat now, to learn storage's session."""
        self._refreshes.value += 1

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Heartbeat until cancelled; raises ``LivenessLost`` on a fatal answer."""
        task_status.started()
        while True:
            seen = self._refreshes.value
            await self._beat()
            with trio.move_on_at(trio.current_time() + self.period):
                await self._refreshes.wait_value(lambda refreshes, seen=seen: refreshes > seen)

    async def _beat(self) -> None:
        """One heartbeat; raises ``LivenessLost`` if this registration cannot go on."""
        sent_at = trio.current_time()
        try:
            session = await self.client.heartbeat(self.em_id)
        except MarkedDead as error:
            # Not logged here: whether the EM rejoins or stops is the runtime's to say.
            raise DeclaredDead(
                f"storage has declared execution manager {self.em_id} dead ({error.message})"
            ) from error
        except IllegalId as error:
            raise self._lost(
                f"storage does not know execution manager id {self.em_id} ({error.message}); "
                "it stops so that its supervisor starts a fresh one"
            ) from error
        except EmClientError as error:
            LOGGER.warning(
                "Heartbeat to storage failed; retrying next period: %s",
                error,
                extra={"em_id": self.em_id, "error": str(error)},
            )
            return
        self.answered_at = sent_at
        previous = self.tracker.current
        try:
            advanced = self.tracker.advance(session)
        except SessionRegressionError as error:
            raise self._lost(f"{error}; execution manager {self.em_id} stops") from error
        if advanced:
            LOGGER.info(
                "Session advanced by heartbeat.",
                extra={"em_id": self.em_id, "from": previous, "to": session},
            )

    def _lost(self, message: str) -> LivenessLost:
        LOGGER.error(message, extra={"em_id": self.em_id})
        return LivenessLost(message)
