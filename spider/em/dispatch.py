"""The dispatch loop of one slot: poll, triage, register, execute, hand the outcome to a reporter.

Each slot of the process pool runs one loop; the loops share the clients, the session tracker,
the consumed-assignment ledger and the reporter. An iteration:

1. Wait until the slot's executor is ready, so no assignment is taken that cannot start.
2. Take a prefetched assignment, or poll the scheduler: ``NextTasks`` (Spider-py's extension,
   one slot polling at a time for all waiting slots) carries every ledger record and may bring
   a few assignments more, kept for the next slot that asks; an upstream scheduler answers UNIMPLEMENTED once, and from then on ``NextTask``
   carries the oldest record on the first RPC of the loop. A failed or cancelled RPC puts its
   records back. Errors back off with jitter. Prefetched assignments are not acknowledged
   until registered: one still waiting at a stop goes back to the scheduler with ``Shutdown``.
3. Triage the assignment's session, then register the instance with storage (retrying
   transport failures). Registered, stale and rejected assignments are all acknowledged, by
   pushing their record to the ledger; one whose registration a stop interrupted is not.
4. Run it on the slot. A stop no longer interrupts anything from here: the pool's shutdown
   deadline (grace) bounds the task.
5. Drop the outcome if storage revoked the instance (the pool killed it: the revocation
   poller) or the session moved on while the task ran; otherwise hand it to the reporter
   (which waits while too many reports are pending) and loop.

Steps 1-3 race the stop (``EmStop``): each is a cancel scope that the first stop request ends at
once, raced by one task per loop rather than one per iteration.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from spider.core import SessionTracker
from spider.core.ids import ExecutionManagerId
from spider.core.retry import FailedAttempt, retry, retry_on
from spider.em._retry import RetryPolicy, Superseded, call_with_retry
from spider.em.assignment import Assignment, ExecutionContext, ReportTarget
from spider.em.errors import (
    CacheStaleAnswer,
    EmClientError,
    ExtensionUnavailable,
    IllegalId,
    MarkedDead,
    StaleSessionAnswer,
)
from spider.em.failure_report import failure_report
from spider.em.ledger import AssignmentLedger
from spider.em.pool import PoolFailureKind, TaskFailed, TaskOutcome, TaskRequest, TaskSucceeded
from spider.em.ports import SchedulerClient, TaskSlot
from spider.em.registration import Registrar
from spider.em.reporting import Reporter
from spider.em.stop import EmStop, StopRacer
from spider.em.triage import Triage, triage

LOGGER: Final = logging.getLogger("spider.em")

_ANY_CLIENT_ERROR: Final = retry_on(EmClientError)

MIN_IDLE_POLL_INTERVAL: Final = 0.05
"""Seconds between the starts of two ``NextTask`` RPCs when the first answered ``no_task``: with
``scheduler_poll_wait_ms: 0`` (or a scheduler that answers early) upstream spins on the CPU."""


@attrs.define(eq=False)
class Dispatcher:
    """What the dispatch loops of all slots share."""

    em_id: ExecutionManagerId
    scheduler: SchedulerClient
    registrar: Registrar
    tracker: SessionTracker
    ledger: AssignmentLedger
    reporter: Reporter
    stop: EmStop
    refresh_liveness: Callable[[], None]
    """``LivenessLoop.refresh``: ask for an immediate heartbeat."""
    poll_wait_ms: int
    policy: RetryPolicy
    scheduler_extension: bool = True
    """Whether to call Spider-py's ``NextTasks``; cleared for good once the scheduler answers
    UNIMPLEMENTED (an upstream scheduler), so it is asked once per process, not per poll."""
    max_tasks_per_poll: int = 1
    """The most assignments one ``NextTasks`` asks for."""
    prefetch_limit: int = 0
    """The most assignments received and not yet started, over all slots."""
    _prefetched: collections.deque[Assignment] = attrs.field(factory=collections.deque, init=False)
    _polling: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    """With the extension, one slot polls at a time, for itself and the slots waiting here."""
    _waiting_to_poll: int = attrs.field(default=0, init=False)

    async def run_slot(self, slot: TaskSlot) -> None:
        """Serve assignments on ``slot`` until a stop is requested and its task has ended."""
        async with self.stop.racing_each_wait() as racer:
            while not self.stop.requested:
                admitted = await self._acquire(slot, racer)
                if admitted is not None:
                    assignment, context = admitted
                    await self._execute(slot, assignment, context)
        LOGGER.info("Dispatch loop stopped.", extra={"slot": slot.index})

    async def _acquire(
        self, slot: TaskSlot, racer: StopRacer
    ) -> tuple[Assignment, ExecutionContext] | None:
        """The next registered assignment, or ``None`` (dropped, or a stop was requested)."""
        assignment: Assignment | None = None
        context: ExecutionContext | None = None
        with racer.cancelled_on_stop() as scope:
            await slot.wait_ready()
            assignment = await self._poll()
            context = await self._admit(assignment)
        if not scope.cancelled_caught:
            return None if context is None or assignment is None else (assignment, context)
        if assignment is not None:
            LOGGER.warning(
                "Stop requested while registering the task instance; the assignment stays "
                "unacknowledged, so the scheduler reschedules it after Shutdown.",
                extra=_assignment_fields(assignment),
            )
        return None

    async def _poll(self) -> Assignment:
        """The next assignment: a prefetched one, else ``NextTasks`` (or ``NextTask``) until one
        arrives; errors back off, never end the loop.

        With the extension one slot polls at a time, asking for itself, for every slot waiting
        to poll and for the prefetch room; a waiting slot then finds its assignment prefetched.
        So assignments never sit prefetched while another slot idles in a long poll of its own.
        Without it (Spider's ``NextTask``, one assignment per call) every slot polls at once.
        """
        if self._prefetched:
            return self._prefetched.popleft()
        if not self.scheduler_extension:
            return await self._poll_loop()
        self._waiting_to_poll += 1
        try:
            await self._polling.acquire()
        finally:
            self._waiting_to_poll -= 1
        try:
            return await self._poll_loop()
        finally:
            self._polling.release()

    async def _poll_loop(self) -> Assignment:
        carry_record = True
        started = -math.inf

        async def poll_until_answered() -> Assignment | None:
            """Poll until an assignment arrives (returned) or a poll is answered with none
            (``None``: the backoff starts over); a ``EmClientError`` is retried by the caller."""
            nonlocal carry_record, started
            while True:
                if self._prefetched:  # brought by another slot's poll
                    return self._prefetched.popleft()
                if not carry_record:
                    await trio.sleep_until(started + MIN_IDLE_POLL_INTERVAL)
                started = trio.current_time()
                try:
                    if self.scheduler_extension:
                        assignments = await self._next_tasks()
                        if assignments is None:
                            continue  # an upstream scheduler: ask it again at once with NextTask
                    else:
                        assignment = await self._next_task(carry_record)
                        assignments = [] if assignment is None else [assignment]
                except EmClientError:
                    # Whether or not the record reached the scheduler, send it again.
                    carry_record = True
                    raise
                if assignments:
                    self._prefetched.extend(assignments[1:])
                    return assignments[0]
                # The record (if any) reached the scheduler: later RPCs of this poll carry none.
                carry_record = False
                return None

        def log(failed: FailedAttempt) -> None:
            LOGGER.warning(
                "Scheduler returned an error; retrying in %.3f s: %s",
                failed.delay,
                failed.error,
                extra={
                    "em_id": self.em_id,
                    "error": str(failed.error),
                    "retry_delay_s": failed.delay,
                },
            )

        while True:
            answer = await retry(
                poll_until_answered,
                delays=self.policy.backoff.delays,
                rule=_ANY_CLIENT_ERROR,
                on_retry=log,
            )
            if answer is not None:
                return answer

    async def _next_task(self, carry_record: bool) -> Assignment | None:
        """One ``NextTask``, carrying the oldest record of the ledger if ``carry_record``."""
        if not carry_record:
            return await self.scheduler.next_task(self.em_id, None, self.poll_wait_ms)
        with self.ledger.lend_one() as record:
            return await self.scheduler.next_task(self.em_id, record, self.poll_wait_ms)

    async def _next_tasks(self) -> list[Assignment] | None:
        """One ``NextTasks`` carrying every record of the ledger; ``None`` (and from now on
        ``NextTask``) if the scheduler does not serve it.

        It asks for one assignment, one more per slot waiting to poll, and up to the room
        ``prefetch_limit`` leaves, within ``max_tasks_per_poll``.
        """
        room = max(0, self.prefetch_limit - len(self._prefetched))
        max_tasks = min(self.max_tasks_per_poll, 1 + self._waiting_to_poll + room)
        try:
            with self.ledger.lend_all() as records:
                return await self.scheduler.next_tasks(
                    self.em_id, records, self.poll_wait_ms, max_tasks
                )
        except ExtensionUnavailable as error:
            if self.scheduler_extension:
                self.scheduler_extension = False
                LOGGER.info(
                    "The scheduler does not serve Spider-py's NextTasks; using NextTask: %s",
                    error,
                    extra={"em_id": self.em_id},
                )
            return None

    def abandon_prefetched(self) -> None:
        """At shutdown: prefetched assignments never started stay unacknowledged, so
        ``Shutdown`` hands them back to the scheduler (storage never heard of them)."""
        if self._prefetched:
            LOGGER.warning(
                "%d prefetched assignments were not started; Shutdown hands them back to the "
                "scheduler.",
                len(self._prefetched),
                extra={"em_id": self.em_id, "returned": len(self._prefetched)},
            )
            self._prefetched.clear()

    async def _admit(self, assignment: Assignment) -> ExecutionContext | None:
        """Triage and register ``assignment``; ``None`` if it was dropped (and acknowledged)."""
        fields = _assignment_fields(assignment)
        LOGGER.debug("Received a new task assignment from the scheduler.", extra=fields)
        verdict = triage(self.tracker, assignment.session)
        if verdict is Triage.STALE:
            LOGGER.warning(
                "Dropping stale task assignment from the scheduler.",
                extra={**fields, "current_session": self.tracker.current},
            )
            self.ledger.push(assignment.record)
            return None
        if verdict is Triage.NEWER:
            LOGGER.info(
                "Assignment from a newer storage session; refreshing liveness.",
                extra={**fields, "current_session": self.tracker.current},
            )
            self.refresh_liveness()
        try:
            context = await call_with_retry(
                lambda: self.registrar.register(assignment),
                # Server errors too are retried for as long as it takes: only an answer from
                # storage lets the assignment be acknowledged (an acknowledged assignment that
                # storage never registered would be lost), and an unacknowledged one would
                # stay with the scheduler until this EM stops. A stop ends the retries and
                # leaves it unacknowledged, so Shutdown hands it back.
                policy=attrs.evolve(self.policy, server_error_attempts=None),
                what="RegisterTaskInstance",
                fields=fields,
                superseded=lambda: self._stale_reason(assignment),
            )
        except Superseded as stale:
            LOGGER.warning("Dropping stale task assignment: %s.", stale.reason, extra=fields)
        except StaleSessionAnswer as error:
            LOGGER.warning(
                "Storage rejected task registration as stale. Dropping the assignment: %s",
                error,
                extra=fields,
            )
            self.refresh_liveness()
        except CacheStaleAnswer as error:
            LOGGER.warning(
                "Storage rejected task registration. Dropping the assignment: %s",
                error,
                extra=fields,
            )
        except (MarkedDead, IllegalId) as error:
            # Storage no longer accepts this EM: the liveness loop is about to end it. Left
            # unacknowledged, the assignment goes back to the scheduler with Shutdown.
            LOGGER.error(
                "Storage refused this execution manager while registering the task instance; "
                "leaving the assignment unacknowledged: %s",
                error,
                extra={**fields, "error": str(error)},
            )
            self.refresh_liveness()
            return None
        except EmClientError as error:
            # InvalidInput or a protocol violation: storage answered that this request cannot
            # be registered, so sending it again cannot help, and an unacknowledged assignment
            # would stay with the scheduler until this EM stops: it is acknowledged like any
            # dropped one.
            LOGGER.error(
                "Storage could not register the task instance. Dropping the assignment: %s",
                error,
                extra={**fields, "error": str(error)},
            )
        else:
            self.ledger.push(assignment.record)
            return context
        self.ledger.push(assignment.record)
        return None

    async def _execute(
        self,
        slot: TaskSlot,
        assignment: Assignment,
        context: ExecutionContext,
    ) -> None:
        request = TaskRequest(
            job_id=assignment.job_id,
            task_id=assignment.task_id,
            task_instance_id=context.task_instance_id,
            resource_group_id=assignment.resource_group_id,
            package=context.package,
            task_func=context.task_func,
            serialized_task_io=context.serialized_task_io,
            hard_timeout=context.hard_timeout_ms / 1000,
        )
        fields = {
            **_assignment_fields(assignment),
            "task_instance_id": context.task_instance_id,
            "slot": slot.index,
            "package": context.package,
            "task_func": context.task_func,
        }
        LOGGER.debug("Task executor acquired for execution.", extra=fields)
        outcome = self._explain(await slot.run(request))
        if isinstance(outcome, TaskFailed) and outcome.kind == PoolFailureKind.REVOKED:
            # Storage dropped the instance (its job ended, or a twin succeeded): a report would
            # be refused, and the kill is no failure of the task.
            LOGGER.info("Task instance revoked by storage; not reporting it.", extra=fields)
            return
        _log_outcome(outcome, fields)
        if self.tracker.is_stale(assignment.session):
            LOGGER.warning(
                "Dropping stale task assignment's outcome.",
                extra={**fields, "current_session": self.tracker.current},
            )
            return
        target = ReportTarget(
            job_id=assignment.job_id,
            task_id=assignment.task_id,
            task_instance_id=context.task_instance_id,
            em_id=self.em_id,
            session=assignment.session,
        )
        if isinstance(outcome, TaskFailed):
            outcome = attrs.evolve(outcome, message=failure_report(outcome, request, self.em_id))
        await self.reporter.submit(target, outcome, self.stop)

    def _explain(self, outcome: TaskOutcome) -> TaskOutcome:
        """Say in a task killed at shutdown's failure why and after how long."""
        if isinstance(outcome, TaskFailed) and outcome.kind == PoolFailureKind.SHUTDOWN:
            return attrs.evolve(outcome, message=self.stop.kill_message())
        return outcome

    def _stale_reason(self, assignment: Assignment) -> str | None:
        if self.tracker.is_stale(assignment.session):
            return (
                f"storage moved to session {self.tracker.current} while the assignment of "
                f"session {assignment.session} was being registered"
            )
        return None


def _assignment_fields(assignment: Assignment) -> dict[str, Any]:
    return {
        "assignment_id": assignment.id,
        "scheduler_id": assignment.scheduler_id,
        "job_id": assignment.job_id,
        "task_id": str(assignment.task_id),
        "bundle_session": assignment.session,
    }


def _log_outcome(outcome: TaskOutcome, fields: dict[str, Any]) -> None:
    if isinstance(outcome, TaskSucceeded):
        LOGGER.info(
            "Task completed successfully.", extra={**fields, "elapsed_us": outcome.elapsed_us}
        )
        return
    LOGGER.warning(
        "Task failed: %s",
        outcome.message,
        extra={
            **fields,
            "failure_kind": outcome.kind,
            "elapsed_us": outcome.elapsed_us,
            "detail": outcome.detail,
        },
    )
