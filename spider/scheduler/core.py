"""``SchedulerCore``: storage's inbound lanes in, round-robin placement, dispatch queue out.

Three lane pollers (one per lane) feed the placement state as their polls return; a placement
loop drains reschedules and fills the dispatch queue as soon as something changed (an ingest, a
reschedule, a ``NextTask`` taking an assignment, a finalizing job expiring). Each poll asks for at
most ``storage_poll_page_size`` entries (upstream asks for all the room in its buffers, up to a
million), so no single answer takes long to decode. A lane whose poll brought work (a full page
or not) polls again at once; one whose poll came back empty waits out the rest of
``tick_interval_ms`` first. Upstream instead polls all three lanes together once per tick and
ticks every 5 ms whether or not anything happened; with long polls and wakeups the scheduler is
idle when the cluster is, and new work waits for no tick.

Storage failures are survived (docs/upstream.md#storage-flaws-fixed, item 10): the pollers wait
with capped exponential backoff plus jitter, the scheduler registers again, and a new storage
session clears all placement state and queued assignments.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from typing import Final, NoReturn

import attrs
import trio
from trio_util import AsyncValue, RepeatedEvent

from spider.core.backoff import Backoff
from spider.core.ids import SchedulerId, SessionId
from spider.core.retry import FailedAttempt, retry, retry_on
from spider.rpc import Endpoint
from spider.scheduler import metrics
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.config import RoundRobinConfig
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.errors import InvalidSessionId
from spider.scheduler.placement import RoundRobinPlacement
from spider.scheduler.storage_link import (
    InboundBatch,
    InboundLane,
    InboundSource,
    StorageLinkLost,
    StorageRegistration,
)

LOGGER: Final = logging.getLogger("spider.scheduler")

UNREGISTERED: Final = SchedulerId(0)
"""The scheduler id before storage has given one."""

_STORAGE_LINK_LOST: Final = retry_on(StorageLinkLost)


@attrs.define(eq=False)
class SchedulerIdentity:
    """The id storage gave this scheduler, and every id it had before in this process.

    Acknowledgements of assignments made under an earlier id (before a re-registration) are
    still ours, so ``own_ids`` keeps them all.
    """

    scheduler_id: SchedulerId = UNREGISTERED
    own_ids: set[SchedulerId] = attrs.field(factory=set)

    def adopt(self, scheduler_id: SchedulerId) -> None:
        """Use ``scheduler_id`` from now on."""
        self.scheduler_id = scheduler_id
        self.own_ids.add(scheduler_id)


@attrs.define(eq=False)
class SchedulerCore:
    """The placement core of one scheduler process."""

    config: RoundRobinConfig
    storage: InboundSource
    reconnect: Backoff
    identity: SchedulerIdentity = attrs.field(factory=SchedulerIdentity)
    placement: RoundRobinPlacement = attrs.field(init=False)
    queue: DispatchQueue = attrs.field(init=False)
    _reschedules: deque[IssuedAssignment] = attrs.field(factory=deque)
    _changes: AsyncValue = attrs.field(factory=lambda: AsyncValue(0))
    """How many times something placement depends on changed (``wake``)."""
    _capacity_changed: RepeatedEvent = attrs.field(factory=RepeatedEvent)
    """Set when dispatch capacity may have freed; a waiter checks its condition, then waits
    (nothing runs between the two, so no change is missed)."""
    _reconnecting: trio.Lock = attrs.field(factory=trio.Lock)
    _failure_delays: Iterator[float] | None = None
    _advertised: Endpoint | None = None

    def __attrs_post_init__(self) -> None:
        self.placement = RoundRobinPlacement(
            self.config.active_job_queue_capacity,
            self.config.finalizing_job_expiration_timeout_sec,
        )
        self.queue = DispatchQueue(self.config.dispatch_queue_capacity, on_take=self.wake)

    @property
    def session(self) -> SessionId:
        """The storage session the core places work for (0 before the first registration)."""
        return self.placement.session

    def wake(self) -> None:
        """Ask for a placement round soon (something changed)."""
        self._changes.value += 1

    def reschedule(self, assignment: IssuedAssignment) -> None:
        """Decide ``assignment``'s task again, with a new id (its EM died or left)."""
        self._reschedules.append(assignment)
        metrics.ASSIGNMENTS_RESCHEDULED.inc()
        self.wake()

    async def run(
        self,
        advertised: Endpoint,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Register with storage as ``advertised``, then poll and place until cancelled.

        ``task_status.started()`` once registered. Raises ``FatalError`` s (``StorageRejected``,
        ``InvalidSessionId``), and whatever a bug raises: the runtime supervises it, and a
        restart keeps the registration and the placement state (registering again would make
        storage resend every ready task, some of them already handed out).
        """
        self._advertised = advertised
        if self.identity.scheduler_id == UNREGISTERED:
            await self._register()
        async with trio.open_nursery() as nursery:
            for lane in InboundLane:
                nursery.start_soon(self._poll_lane, lane)
            task_status.started()
            await self._place_forever()

    # --- storage ---------------------------------------------------------------------------

    async def _register(self) -> None:
        advertised = self._advertised
        assert advertised is not None, "run() sets the advertised endpoint first"
        # Continues the lanes' backoff if a failed poll started one.
        delays = self._failure_delays or self.reconnect.delays()

        def log(failed: FailedAttempt) -> None:
            LOGGER.warning(
                "cannot register with storage (%s); retrying in %.2f s",
                failed.error,
                failed.delay,
                extra={"retry_delay_s": failed.delay},
            )

        registration = await retry(
            lambda: self.storage.register(advertised),
            delays=lambda: delays,
            rule=_STORAGE_LINK_LOST,
            on_retry=log,
        )
        self._registered(registration)

    def storage_reason(self) -> str | None:
        """Why the scheduler cannot place storage's work now (readiness), or ``None``."""
        if self.identity.scheduler_id == UNREGISTERED:
            return "not registered with storage yet"
        if self._failure_delays is not None:
            return "lost storage; polling it again"
        return None

    def _registered(self, registration: StorageRegistration) -> None:
        self.identity.adopt(registration.scheduler_id)
        LOGGER.info(
            "registered with storage as scheduler %d (storage session %d)",
            registration.scheduler_id,
            registration.session,
            extra={"scheduler_id": registration.scheduler_id, "session_id": registration.session},
        )
        if registration.session < self.session:
            raise InvalidSessionId(
                f"storage answered with session {registration.session}, older than session "
                f"{self.session} this scheduler already saw: its database was replaced; "
                "restart the scheduler"
            )
        if registration.session > self.session:
            self._start_session(registration.session)

    async def _recover(self, error: StorageLinkLost) -> None:
        """Back off after a failed poll; the lanes then poll again.

        Registering again here would be wrong while storage keeps running: storage answers a
        repeated registration by re-enqueuing all ready work, including tasks already in the
        dispatch queue or handed to EMs, which would then be dispatched twice. A restarted
        storage shows itself by a newer session in a poll answer; ``_poll_lane`` registers
        then (the new process's first registration, which resends nothing).
        """
        # Waits out a registration another lane has under way (``_follow_restart``), so the
        # lanes do not poll a storage that is still being reconnected to.
        async with self._reconnecting:
            if self._failure_delays is None:
                self._failure_delays = self.reconnect.delays()
            delay = next(self._failure_delays)
        LOGGER.warning(
            "lost storage (%s); polling again in %.2f s",
            error,
            delay,
            extra={"retry_delay_s": delay},
        )
        await trio.sleep(delay)

    async def _follow_restart(self, session: SessionId) -> None:
        """Register with the storage process that answers in ``session`` (newer than ours)."""
        async with self._reconnecting:
            if session > self.session:  # not already done by another lane
                await self._register()

    def lane_limit(self, lane: InboundLane) -> int:
        """How many entries of ``lane`` the buffers have room for."""
        placement, config = self.placement, self.config
        if lane is InboundLane.COMMIT:
            room = config.commit_ready_task_capacity - placement.buffered_commit
        elif lane is InboundLane.CLEANUP:
            room = config.cleanup_ready_task_capacity - placement.buffered_cleanup
        else:
            regular = placement.buffered - placement.buffered_commit - placement.buffered_cleanup
            room = config.ready_task_capacity - regular
        return max(room, 0)

    async def _poll_lane(self, lane: InboundLane) -> NoReturn:
        tick = self.config.tick_interval_ms / 1000
        wait_ms = math.ceil(self.config.storage_poll_timeout_ms)
        while True:
            started = trio.current_time()
            limit = min(self.lane_limit(lane), self.config.storage_poll_page_size)
            if limit == 0:
                await self._capacity_changed.wait()
                continue
            polled_in = self.session
            try:
                batch = await self.storage.poll(lane, limit, wait_ms)
            except StorageLinkLost as error:
                await self._recover(error)
                continue
            self._failure_delays = None
            if batch.session < polled_in:
                # Older than the session current when this poll started: not a late answer of
                # a restarted process, but a storage whose database was replaced.
                raise InvalidSessionId(
                    f"storage answered in session {batch.session}, older than session "
                    f"{polled_in} this scheduler already saw: its database was replaced; "
                    "restart the scheduler"
                )
            if batch.session > self.session:
                await self._follow_restart(batch.session)
            self.ingest(lane, batch)
            if not batch.entries:
                # At most one empty poll per lane per tick, so a zero wait does not spin. An
                # answer with work is followed at once: the next job may already be waiting,
                # and a full page means more is (storage answers at once while entries are).
                await trio.sleep_until(started + tick)

    def ingest(self, lane: InboundLane, batch: InboundBatch) -> None:
        """Load one lane's answer (docs/upstream.md#the-schedulers-core-loop step 2, per lane)."""
        if batch.session < self.session:
            # Polled before a restart that another lane already saw; storage lost these
            # entries with its queue and will enqueue them again.
            if batch.entries:
                LOGGER.warning(
                    "dropping %d %s-lane entries of old storage session %d",
                    len(batch.entries),
                    lane.value,
                    batch.session,
                )
            return
        if batch.session > self.session:
            self._start_session(batch.session)
        now = trio.current_time()
        loaded = sum(self.placement.load(entry, now) for entry in batch.entries)
        if loaded:
            self.wake()
        if loaded != len(batch.entries) or (loaded and lane is not InboundLane.TASK):
            # Skipped entries, or a commit or cleanup that dropped its job's buffered tasks:
            # either may have made room for a task-lane poller parked at limit 0.
            self._capacity_changed.set()

    def _start_session(self, session: SessionId) -> None:
        old = self.session
        self.placement.start_session(session)
        dropped = self.queue.bump(session)
        LOGGER.info(
            "storage session %d replaces %d: cleared placement state and %d queued assignment(s)",
            session,
            old,
            dropped,
            extra={"session_id": session},
        )
        self._capacity_changed.set()
        self.wake()

    # --- placement -------------------------------------------------------------------------

    async def _place_forever(self) -> NoReturn:
        # A round runs as soon as something changed (an ingest, a reschedule, a take freeing a
        # dispatch slot) rather than on the next tick: with back-to-back small jobs a tick added
        # up to tick_interval_ms to each one's latency. Changes made while a round is pending
        # coalesce into it, and a round never wakes itself, so this does not spin.
        tick = self.config.tick_interval_ms / 1000
        while True:
            started = trio.current_time()
            seen = self._changes.value
            self.place()
            # An expiry alone wakes at most one round per tick: a deadline that rounding leaves
            # just short of expired cannot make the loop spin.
            with trio.move_on_at(max(self.placement.next_expiry(), started + tick)):
                await self._changes.wait_value(lambda changes, seen=seen: changes > seen)

    def place(self) -> list[IssuedAssignment]:
        """One placement round: reschedules, then decisions, then finalizing expiry."""
        self._drain_reschedules()
        decided = self.placement.decide(self.queue.free_slots)
        for assignment in decided:
            self.queue.put(assignment)
        metrics.TASKS_PLACED.inc(len(decided))
        expired = self.placement.retire_expired(trio.current_time())
        if decided or expired:
            self._capacity_changed.set()
        return decided

    def _drain_reschedules(self) -> None:
        now = trio.current_time()
        # Only what was there at the start: loading cannot add more, but a bound keeps the
        # round's cost known.
        for _ in range(len(self._reschedules)):
            assignment = self._reschedules.popleft()
            if assignment.session < self.session:
                LOGGER.debug("dropping rescheduled assignment %d of an old session", assignment.id)
                continue
            self.placement.load(assignment.entry, now)
