"""``DispatchQueue``: the bounded queue between the placement core and ``NextTask`` long polls.

One writer (the core) and any number of readers (``NextTask`` handlers). Every assignment
carries the session it was decided in, and ``bump`` moves the queue to a newer session and
drops what is queued. Upstream holds a read lock across each reader's wait so that a bump waits
for in-flight long polls; here a reader instead discards any item of an older session it
receives, which gives the same guarantee (no pre-bump item is ever delivered) without making the
core wait up to a whole long-poll period for readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from spider.core.ids import SessionId
from spider.scheduler.assignment import NO_SESSION, IssuedAssignment
from spider.scheduler.errors import InvalidSessionId


def _nothing() -> None:
    pass


@attrs.define(eq=False)
class DispatchQueue:
    """A bounded FIFO of assignments of the current session.

    ``on_take`` runs whenever a reader takes an item, so that the core can refill the freed
    slot at once instead of on its next periodic tick.
    """

    capacity: int
    on_take: Callable[[], None] = _nothing
    _session: SessionId = NO_SESSION
    _send: trio.MemorySendChannel[IssuedAssignment] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[IssuedAssignment] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"dispatch queue capacity must be >= 1, got {self.capacity}")
        self._send, self._receive = trio.open_memory_channel[IssuedAssignment](self.capacity)

    @property
    def session(self) -> SessionId:
        """The session of the assignments the queue accepts and delivers."""
        return self._session

    def __len__(self) -> int:
        return self._send.statistics().current_buffer_used

    @property
    def free_slots(self) -> int:
        """How many assignments ``put`` accepts right now."""
        return self.capacity - len(self)

    def put(self, assignment: IssuedAssignment) -> None:
        """Queue ``assignment``; the caller stays within ``free_slots``.

        An assignment of another session is a bug of the core, not a run-time condition.
        """
        if assignment.session != self._session:
            raise InvalidSessionId(
                f"assignment {assignment.id} is of session {assignment.session}, "
                f"the dispatch queue is at session {self._session}"
            )
        self._send.send_nowait(assignment)  # trio.WouldBlock past free_slots: a core bug

    def bump(self, session: SessionId) -> int:
        """Move to ``session`` (which must be newer) and drop the queued assignments.

        Returns how many were dropped.
        """
        if session <= self._session:
            raise InvalidSessionId(
                f"dispatch queue session can only move forward: {self._session} -> {session}"
            )
        self._session = session
        dropped = 0
        while True:
            try:
                self._receive.receive_nowait()
            except trio.WouldBlock:
                return dropped
            dropped += 1

    def take_nowait(self) -> IssuedAssignment | None:
        """The next assignment of the current session if one is queued, else ``None``.

        No checkpoint: a handler can record what it took before it can be cancelled.
        """
        while True:
            try:
                assignment = self._receive.receive_nowait()
            except trio.WouldBlock:
                return None
            self.on_take()
            if assignment.session == self._session:
                return assignment

    async def take(self, wait: float) -> IssuedAssignment | None:
        """The next assignment of the current session, waiting up to ``wait`` seconds for one.

        ``wait == 0`` never blocks (it still checkpoints). Cancellation never loses an item.
        """
        deadline = trio.current_time() + wait if math.isfinite(wait) else math.inf
        while True:
            try:
                assignment = self._receive.receive_nowait()
            except trio.WouldBlock:
                if trio.current_time() >= deadline:
                    await trio.lowlevel.checkpoint()
                    return None
                received: IssuedAssignment | None = None
                with trio.move_on_at(deadline):
                    received = await self._receive.receive()
                if received is None:
                    return None
                assignment = received
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
            self.on_take()
            if assignment.session == self._session:
                return assignment
            # Handed over before a bump but received after it: it belongs to a dead session.
