"""Outcome reports: a bounded queue of outcomes, sent by a few sender tasks, each report retried
until it lands, stops mattering, or the shutdown drain runs out.

A dispatch loop hands its outcome over with ``submit``, which waits while ``max_pending``
outcomes are queued or being sent: a storage that falls behind slows dispatch down instead of
letting reports pile up (upstream starts one task per outcome, and with hundreds of reports
racing for storage each one trailed its task by half a second). Once a stop is requested
``submit`` no longer waits, so the last outcome of every slot still gets its report.

With Spider-py's extension, one ``ReportTaskOutcomes`` is in flight at a time and carries
whatever was queued meanwhile, up to ``max_batch`` outcomes. Outcomes
the batch did not settle (the call failed, or an item failed transiently) are then reported
one at a time as below; an upstream storage answers UNIMPLEMENTED once, and from then on every
outcome goes as ``ReportTaskSuccess`` or ``ReportTaskFailure``.

A report is retried while storage is unreachable (``TransportError``) and, a few times, while it
fails internally (``ServerError``). Before each attempt the report's session is checked: once
the liveness loop has seen a newer session, storage has restarted and forgotten the instance,
so the outcome is dropped (a stale outcome is never reported). Storage rejecting the report as
stale (``StaleSessionAnswer``, ``CacheStaleAnswer``: the instance timed out, the job ended)
drops it too. When storage declares the EM dead, every outcome of that registration is stale:
``abandon`` says so, and the runtime cancels ``run``; the outcomes are dropped with one line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio
from trio_util import RepeatedEvent

from spider.core import SessionTracker
from spider.em._retry import RetryPolicy, Superseded, call_with_retry
from spider.em.assignment import ReportTarget
from spider.em.errors import (
    CacheStaleAnswer,
    EmClientError,
    ExtensionUnavailable,
    InvalidInput,
    ServerError,
    StaleSessionAnswer,
    TransportError,
)
from spider.em.pool import PoolFailureKind, TaskFailed, TaskOutcome, TaskSucceeded
from spider.em.ports import StorageClient
from spider.em.stop import EmStop

LOGGER: Final = logging.getLogger("spider.em")

DEFAULT_MAX_PENDING_REPORTS: Final = 256
"""Outcomes queued or being reported before dispatch waits (``max_pending_reports``)."""

DEFAULT_REPORT_SENDERS: Final = 4
"""Reports sent at the same time (``report_senders``)."""

_Queued = tuple[ReportTarget, TaskOutcome]


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"Reporter.{attribute.name} must be >= 1, got {value!r}")


@attrs.define(eq=False)
class Reporter:
    """Sends task outcomes to storage: ``submit`` queues one, ``run`` sends them."""

    storage: StorageClient
    tracker: SessionTracker
    refresh_liveness: Callable[[], None]
    policy: RetryPolicy
    max_pending: int = attrs.field(default=DEFAULT_MAX_PENDING_REPORTS, validator=_at_least_one)
    senders: int = attrs.field(default=DEFAULT_REPORT_SENDERS, validator=_at_least_one)
    max_batch: int = attrs.field(default=64, validator=_at_least_one)
    """The most outcomes one ``ReportTaskOutcomes`` carries."""
    storage_extension: bool = True
    """Whether to call Spider-py's ``ReportTaskOutcomes``; cleared for good once storage
    answers UNIMPLEMENTED (an upstream storage)."""
    _batching: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    in_flight: int = attrs.field(default=0, init=False)
    """Outcomes submitted and not yet answered (queued or being sent): what a shutdown drain
    waits for."""
    delivered: int = attrs.field(default=0, init=False)
    """Reports storage accepted."""
    abandoned: str | None = attrs.field(default=None, init=False)
    """Why the outcomes still pending are to be dropped (``abandon``); ``None`` until then."""
    _room: RepeatedEvent = attrs.field(factory=RepeatedEvent, init=False)
    """Set whenever outcomes were answered: ``submit`` rechecks the bound."""
    _send: trio.MemorySendChannel[_Queued] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[_Queued] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Unbounded: ``submit`` enforces the bound, so that it can be lifted at a stop.
        self._send, self._receive = trio.open_memory_channel[_Queued](math.inf)

    async def submit(self, target: ReportTarget, outcome: TaskOutcome, stop: EmStop) -> None:
        """Queue ``outcome`` for storage, first waiting while ``max_pending`` outcomes are
        pending; a stop request ends the wait (the queue then exceeds the bound by at most one
        outcome per slot), since the dispatch loop takes no new work after it."""
        if self.in_flight >= self.max_pending:  # rare: race the stop only then
            async with stop.cancelled_on_stop():
                while self.in_flight >= self.max_pending:
                    await self._room.wait()
        self.in_flight += 1
        self._send.send_nowait((target, outcome))

    def close(self) -> None:
        """No more outcomes will be submitted: ``run`` returns once the queue is empty."""
        self._send.close()

    def abandon(self, reason: str) -> None:
        """The pending outcomes are stale (the registration they belong to has ended): the
        cancellation of ``run`` that follows drops them with this line, not as a failed drain."""
        self.abandoned = reason
        if self.in_flight:
            LOGGER.info(
                "Dropping %d task outcomes without reporting them: %s.",
                self.in_flight,
                reason,
                extra={"dropped": self.in_flight},
            )

    async def run(self) -> None:
        """Send queued outcomes with ``senders`` tasks until ``close`` and the queue is empty.

        When cancelled (the shutdown drain ran out), the outcomes never sent are logged.
        """
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.senders):
                    nursery.start_soon(self._sender)
        finally:
            # Empty unless the drain ran out: the senders return only on an empty, closed queue.
            queued = self._receive.statistics().current_buffer_used
            if queued and self.abandoned is None:
                LOGGER.error(
                    "%d task outcome reports abandoned before they were sent: the shutdown "
                    "drain ran out.",
                    queued,
                    extra={"abandoned": queued},
                )

    async def _sender(self) -> None:
        while True:
            batch: list[_Queued] = []
            try:
                if self.storage_extension:
                    # One ReportTaskOutcomes at a time, and only its sender waits for outcomes:
                    # what is submitted while it is in flight goes in the next one, so the calls
                    # carry more as storage slows down. Retries of leftovers run outside the lock.
                    async with self._batching:
                        if not await self._receive_into(batch, self.max_batch):
                            return
                        leftover = batch
                        if self.storage_extension:
                            leftover = await self._report_batch(batch)
                else:
                    if not await self._receive_into(batch, 1):
                        return
                    leftover = batch
                for target, outcome in leftover:
                    await self.report(target, outcome)
            finally:
                self._finished(len(batch))

    async def _receive_into(self, batch: list[_Queued], limit: int) -> bool:
        """Wait for one outcome, then take what else is queued, up to ``limit`` in all; False
        once the queue is closed and empty."""
        try:
            batch.append(await self._receive.receive())
        except trio.EndOfChannel:
            return False
        while len(batch) < limit:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return True

    async def _report_batch(self, batch: list[_Queued]) -> list[_Queued]:
        current: list[_Queued] = []
        for target, outcome in batch:
            reason = self._superseded(target)
            if reason is None:
                current.append((target, outcome))
            else:
                LOGGER.warning("Dropping stale task outcome: %s.", reason, extra=_fields(target))
        if not current:
            return []
        try:
            errors = await self.storage.report_outcomes(current)
        except ExtensionUnavailable as error:
            self.storage_extension = False
            LOGGER.info(
                "Storage does not serve Spider-py's ReportTaskOutcomes; reporting one at a "
                "time: %s",
                error,
            )
            return current
        except EmClientError as error:
            LOGGER.warning(
                "ReportTaskOutcomes failed (%s); reporting its %d outcomes one at a time.",
                error,
                len(current),
                extra={"error": str(error)},
            )
            return current
        except trio.Cancelled:
            if self.abandoned is not None:
                raise
            LOGGER.error(
                "%d task outcome reports abandoned: the shutdown drain ran out before storage "
                "answered.",
                len(current),
                extra={"abandoned": len(current)},
            )
            raise
        leftover: list[_Queued] = []
        for (target, outcome), item_error in zip(current, errors, strict=True):
            if item_error is None:
                self._delivered(target, "ReportTaskOutcomes")
            elif isinstance(item_error, TransportError | ServerError):
                leftover.append((target, outcome))  # retried like any single report
            elif (failure := _refused_outputs(target, outcome, item_error)) is not None:
                leftover.append((target, failure))
            else:
                self._rejected(target, item_error)
        return leftover

    def _delivered(self, target: ReportTarget, what: str) -> None:
        self.delivered += 1
        LOGGER.debug("Task outcome reported.", extra={**_fields(target), "report": what})

    def _rejected(self, target: ReportTarget, error: EmClientError) -> None:
        """Storage answered that ``target``'s outcome cannot be accepted: drop it."""
        fields = _fields(target)
        if isinstance(error, StaleSessionAnswer):
            LOGGER.warning(
                "Storage rejected the outcome as stale; dropping it: %s", error, extra=fields
            )
            self.refresh_liveness()
        elif isinstance(error, CacheStaleAnswer):
            LOGGER.warning(
                "Storage no longer accepts this outcome; dropping it: %s", error, extra=fields
            )
        else:
            LOGGER.error(
                "Failed to report task outcome to storage. Dropping the report: %s",
                error,
                extra={**fields, "error": str(error)},
            )

    def _finished(self, count: int) -> None:
        self.in_flight -= count
        self._room.set()

    async def report(self, target: ReportTarget, outcome: TaskOutcome) -> None:
        """Report ``outcome`` of ``target`` now; failures are logged, never raised."""
        fields = _fields(target)
        if isinstance(outcome, TaskSucceeded):
            what = "ReportTaskSuccess"

            async def send() -> None:
                await self.storage.report_success(target, outcome.outputs)
        else:
            what = "ReportTaskFailure"

            async def send() -> None:
                await self.storage.report_failure(target, outcome.message)

        try:
            await call_with_retry(
                send,
                policy=self.policy,
                what=what,
                fields=fields,
                superseded=lambda: self._superseded(target),
            )
        except Superseded as stale:
            LOGGER.warning("Dropping stale task outcome: %s.", stale.reason, extra=fields)
        except EmClientError as error:
            failure = _refused_outputs(target, outcome, error)
            if failure is None:
                self._rejected(target, error)
            else:
                await self.report(target, failure)
        except trio.Cancelled:
            if self.abandoned is not None:
                raise
            LOGGER.error(
                "Task outcome report abandoned: the shutdown drain ran out before storage "
                "answered.",
                extra=fields,
            )
            raise
        else:
            self._delivered(target, what)

    def _superseded(self, target: ReportTarget) -> str | None:
        if self.tracker.is_stale(target.session):
            return (
                f"storage moved to session {self.tracker.current} after the task was registered "
                f"in session {target.session}"
            )
        return None


def _refused_outputs(
    target: ReportTarget, outcome: TaskOutcome, error: EmClientError
) -> TaskFailed | None:
    """The failure to report instead of a success whose outputs storage refused as invalid
    (over its outputs cap, or not one payload per declared output): dropping the report would
    leave the instance live until a timeout, or forever without one; a failure lets the task's
    retries and then its job's end follow, with storage's reason."""
    if not isinstance(outcome, TaskSucceeded) or not isinstance(error, InvalidInput):
        return None
    LOGGER.warning(
        "Storage refused the task's outputs; reporting the task as failed: %s",
        error,
        extra={**_fields(target), "error": str(error)},
    )
    return TaskFailed(
        f"storage refused the task's outputs: {error.message}", PoolFailureKind.OUTPUT_TOO_LARGE
    )


def _fields(target: ReportTarget) -> dict[str, Any]:
    return {
        "em_id": target.em_id,
        "job_id": target.job_id,
        "task_id": str(target.task_id),
        "task_instance_id": target.task_instance_id,
        "session_id": target.session,
    }
