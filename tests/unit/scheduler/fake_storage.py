"""A fake of storage's side of the scheduler (``InboundSource``) with restarts and outages."""

from __future__ import annotations

import attrs
import trio
from trio_util import RepeatedEvent

from spider.core.ids import SchedulerId, SessionId
from spider.core.ready_task import ReadyTask
from spider.rpc import Endpoint
from spider.scheduler.errors import StorageRejected
from spider.scheduler.storage_link import (
    InboundBatch,
    InboundLane,
    StorageLinkLost,
    StorageRegistration,
)


@attrs.define(eq=False)
class FakeStorage:
    """Three lanes of entries; ``down`` makes every call fail as an unreachable storage does."""

    session: int = 1
    down: bool = False
    rejects: bool = False
    registrations: list[Endpoint] = attrs.field(factory=list)
    failed_registrations: int = 0
    failed_polls: int = 0
    lanes: dict[InboundLane, list[ReadyTask]] = attrs.field(
        factory=lambda: {lane: [] for lane in InboundLane}
    )
    polls: dict[InboundLane, list[int]] = attrs.field(
        factory=lambda: {lane: [] for lane in InboundLane}
    )
    _changed: RepeatedEvent = attrs.field(factory=RepeatedEvent)

    def enqueue(self, *entries: ReadyTask) -> None:
        for entry in entries:
            lane = {"Index": InboundLane.TASK, "Commit": InboundLane.COMMIT}.get(
                entry.task_id.kind.value, InboundLane.CLEANUP
            )
            self.lanes[lane].append(entry)
        self._fire()

    def restart(self, *, down: bool) -> None:
        """Lose the queue and move to a new session (``down`` until brought up)."""
        self.session += 1
        for entries in self.lanes.values():
            entries.clear()
        self.down = down
        self._fire()

    def _fire(self) -> None:
        self._changed.set()

    async def register(self, advertised: Endpoint) -> StorageRegistration:
        await trio.sleep(0.001)
        if self.rejects:
            raise StorageRejected("bad advertised endpoint")
        if self.down:
            self.failed_registrations += 1
            raise StorageLinkLost("connection refused")
        self.registrations.append(advertised)
        return StorageRegistration(SchedulerId(len(self.registrations)), SessionId(self.session))

    async def poll(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        self.polls[lane].append(max_items)
        deadline = trio.current_time() + wait_ms / 1000
        while True:
            if self.down:
                await trio.sleep(0.001)
                self.failed_polls += 1
                raise StorageLinkLost("connection reset")
            entries = self.lanes[lane]
            if entries or trio.current_time() >= deadline:
                taken, entries[:max_items] = entries[:max_items], []
                await trio.sleep(0.001)
                return InboundBatch(SessionId(self.session), tuple(taken))
            with trio.move_on_at(deadline):
                await self._changed.wait()
