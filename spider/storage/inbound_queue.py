"""The inbound queue: ready work waiting for the scheduler, in three lanes (task, commit, cleanup).

Producers (StartJob, successes that make children ready, retries, soft timeouts, dead EMs,
cancels with a cleanup task, resends) call ``put``, which never blocks. Upstream's lanes are
bounded channels whose producers block while holding job locks, so a full lane stalls every RPC
on that job, and a resend before the scheduler polls deadlocks startup
(docs/upstream.md#the-inbound-queue-and-the-task-instance-pool). Here a lane instead

* deduplicates: an entry already waiting for (job, task) is not added again. A second identical
  entry would reach the scheduler in the same poll, where it is deduplicated anyway, so nothing
  is lost; in exchange a lane never holds more entries than there are distinct ready tasks in the
  job cache, which is already in memory. Resends and soft-timeout re-enqueues cannot grow it.
* treats its capacity as a high-water mark: above it a warning is logged once (and again after
  the lane has drained below half of it), because a lane that deep means the scheduler is not
  keeping up. Entries are never dropped and producers never wait.

The scheduler drains a lane with ``receive``, which returns as soon as at least one entry is
there, with up to ``max_items`` of those immediately available. Upstream waits for the whole
``wait_ms`` unless ``max_items`` fill up; returning early changes latency, not
correctness: the scheduler simply polls again. The caller bounds the wait with
``trio.move_on_after``.
"""

from __future__ import annotations

import collections
import enum
import logging

import attrs
import trio

from spider.core.ids import JobId, ResourceGroupId
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId, TaskKind
from spider.storage.config import InboundQueueConfig

LOGGER = logging.getLogger("spider.storage.inbound_queue")


class Lane(enum.Enum):
    """One lane per task kind; each has its own Poll RPC."""

    TASK = "task"
    COMMIT = "commit"
    CLEANUP = "cleanup"

    @classmethod
    def of(cls, task_id: TaskId) -> Lane:
        """The lane that carries ``task_id``."""
        return _LANE_OF_KIND[task_id.kind]


_LANE_OF_KIND = {
    TaskKind.INDEX: Lane.TASK,
    TaskKind.COMMIT: Lane.COMMIT,
    TaskKind.CLEANUP: Lane.CLEANUP,
}


@attrs.define(eq=False)
class _LaneQueue:
    lane: Lane
    high_water: int
    entries: collections.deque[ReadyTask] = attrs.field(factory=collections.deque)
    waiting: set[tuple[JobId, TaskId]] = attrs.field(factory=set)
    lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    over_high_water: bool = False

    def put(self, entry: ReadyTask) -> None:
        key = (entry.job_id, entry.task_id)
        if key in self.waiting:
            return
        self.waiting.add(key)
        self.entries.append(entry)
        if not self.over_high_water and len(self.entries) > self.high_water:
            self.over_high_water = True
            LOGGER.warning(
                "inbound %s lane holds %d entries, above its capacity of %d: the scheduler is "
                "not keeping up; entries are kept (none dropped) and the lane stays deduplicated",
                self.lane.value,
                len(self.entries),
                self.high_water,
                extra={"lane": self.lane.value, "depth": len(self.entries)},
            )
        self.lot.unpark_all()

    def take(self, max_items: int) -> list[ReadyTask]:
        count = min(max_items, len(self.entries))
        batch = [self.entries.popleft() for _ in range(count)]
        for entry in batch:
            self.waiting.discard((entry.job_id, entry.task_id))
        if self.over_high_water and len(self.entries) <= self.high_water // 2:
            self.over_high_water = False
            LOGGER.info(
                "inbound %s lane drained to %d entries",
                self.lane.value,
                len(self.entries),
                extra={"lane": self.lane.value, "depth": len(self.entries)},
            )
        return batch


@attrs.define(eq=False)
class InboundQueue:
    """Three deduplicated lanes of ready work; ``put`` never blocks, ``receive`` waits for work."""

    _lanes: dict[Lane, _LaneQueue]

    @classmethod
    def from_config(cls, config: InboundQueueConfig) -> InboundQueue:
        """A queue whose lanes warn above the configured capacities."""
        return cls(
            {
                Lane.TASK: _LaneQueue(Lane.TASK, config.task_capacity),
                Lane.COMMIT: _LaneQueue(Lane.COMMIT, config.commit_capacity),
                Lane.CLEANUP: _LaneQueue(Lane.CLEANUP, config.cleanup_capacity),
            }
        )

    def put(self, resource_group_id: ResourceGroupId, job_id: JobId, task_id: TaskId) -> None:
        """Make a task available to the scheduler, unless an entry for it is already waiting."""
        self._lanes[Lane.of(task_id)].put(ReadyTask(resource_group_id, job_id, task_id))

    def depth(self, lane: Lane) -> int:
        """How many entries wait in ``lane``."""
        return len(self._lanes[lane].entries)

    def capacity(self, lane: Lane) -> int:
        """The depth of ``lane`` above which storage warns (never a limit)."""
        return self._lanes[lane].high_water

    async def receive(self, lane: Lane, max_items: int) -> list[ReadyTask]:
        """Wait until ``lane`` holds an entry, then take up to ``max_items`` at once.

        Entries already there are returned even if the caller's deadline has passed (a poll
        with ``wait_ms = 0`` gets what is available). Nothing is taken before the last
        cancellation point, so a cancelled call never loses entries. ``max_items == 0``
        returns an empty list.
        """
        if max_items <= 0:
            await trio.lowlevel.checkpoint()
            return []
        queue = self._lanes[lane]
        if queue.entries:
            batch = queue.take(max_items)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return batch
        while not queue.entries:
            await queue.lot.park()
        return queue.take(max_items)
