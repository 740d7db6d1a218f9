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

Upstream's polls take their entries off the lane before the answer is delivered, so an answer
lost on the way loses its tasks until the scheduler registers again. Spider-py's acknowledged
poll (``receive_leased``) instead keeps each lane's last answer with entries as a *lease* until
the scheduler's next poll acknowledges its batch number; a poll that does not gets the lease's
entries back at the front of the lane, ahead of newer ones.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable

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


NO_BATCH = 0
"""The batch of an answer without entries, and the acknowledgement of no answer."""


@attrs.frozen
class LeasedBatch:
    """An acknowledged poll's answer: its batch number (``NO_BATCH`` when empty) and entries."""

    batch: int
    entries: tuple[ReadyTask, ...]


EMPTY_BATCH = LeasedBatch(NO_BATCH, ())


def _always(entry: ReadyTask) -> bool:
    return True


@attrs.define(eq=False)
class _LaneQueue:
    lane: Lane
    high_water: int
    entries: collections.deque[ReadyTask] = attrs.field(factory=collections.deque)
    waiting: set[tuple[JobId, TaskId]] = attrs.field(factory=set)
    lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    over_high_water: bool = False
    lease: LeasedBatch = EMPTY_BATCH
    """The last acknowledged poll's answer with entries, until a poll acknowledges it."""
    last_batch: int = NO_BATCH

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

    def settle(self, acknowledged: int, offerable: Callable[[ReadyTask], bool]) -> None:
        """End the lease: acknowledged, it is done; else its answer was lost (or went to a
        poll the scheduler gave up on), and its entries go back to the front, in order.

        Entries waiting in the lane already (enqueued again meanwhile) stay where they are, and
        those ``offerable`` rejects (started or ended since) are dropped.
        """
        lease, self.lease = self.lease, EMPTY_BATCH
        if lease.batch == NO_BATCH or lease.batch == acknowledged:
            return
        returned = [
            entry
            for entry in lease.entries
            if (entry.job_id, entry.task_id) not in self.waiting and offerable(entry)
        ]
        for entry in reversed(returned):
            self.waiting.add((entry.job_id, entry.task_id))
            self.entries.appendleft(entry)
        LOGGER.info(
            "inbound %s lane: batch %d was not acknowledged; %d of its %d entries offered again",
            self.lane.value,
            lease.batch,
            len(returned),
            len(lease.entries),
            extra={"lane": self.lane.value, "batch": lease.batch},
        )
        if returned:
            self.lot.unpark_all()

    def take_leased(self, max_items: int) -> LeasedBatch:
        taken = self.take(max_items)
        if not taken:
            return EMPTY_BATCH
        self.last_batch += 1
        self.lease = LeasedBatch(self.last_batch, tuple(taken))
        return self.lease


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

    async def receive_leased(
        self,
        lane: Lane,
        max_items: int,
        acknowledged: int,
        offerable: Callable[[ReadyTask], bool] = _always,
    ) -> LeasedBatch:
        """``receive`` for the acknowledged poll: the entries come back as ``lane``'s new lease.

        ``acknowledged`` is the batch of the last answer the caller received (``NO_BATCH`` for
        none). A lease it does not acknowledge is settled first, so its entries (those
        ``offerable`` keeps) are in this answer, ahead of newer ones. A lease another poll took
        while this one waited is settled too: the scheduler polls each lane one call at a time,
        so that other poll is one it has given up on. A cancelled call takes nothing, and an
        answer without entries (``max_items == 0``, the wait ran out) leases nothing.
        """
        queue = self._lanes[lane]
        queue.settle(acknowledged, offerable)
        if max_items <= 0:
            await trio.lowlevel.checkpoint()
            return EMPTY_BATCH
        if queue.entries:
            batch = queue.take_leased(max_items)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return batch
        while not queue.entries:
            await queue.lot.park()
            queue.settle(acknowledged, offerable)
        return queue.take_leased(max_items)
