"""Task-instance registrations of all slots, coalesced into ``RegisterTaskInstances`` calls.

A slot registers its assignment only when it is about to run it (storage starts the instance's
timeouts at registration), so registrations cannot be gathered ahead of time. Instead, with
Spider-py's execution extension, one ``RegisterTaskInstances`` is in flight at a time and the
registrations other slots ask for meanwhile wait for it and go together in the next one. Each
caller gets exactly what a ``RegisterTaskInstance`` of its own would have given it: the execution
context or the same ``EmClientError``, which the dispatch loop retries or handles as before.

A registration may carry the outcome its slot just produced (``HeldOutcome``): the call is then a
``ReportAndRegister``, which reports and registers in one storage call, and the reporter settles
the outcome with its answer; an outcome whose call gets no answer goes back to the reporter's
queue, and is reported as any other.

A storage that answers UNIMPLEMENTED (upstream Spider) is remembered: from then on every
registration is a ``RegisterTaskInstance``. A caller cancelled while its registration is in a
call leaves it unacknowledged, as a cancelled single call would (storage may or may not have
created the instance; ``Shutdown`` hands the assignment back).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import attrs
import trio

from spider.core.ids import ExecutionManagerId
from spider.em.assignment import Assignment, ExecutionContext
from spider.em.errors import EmClientError, ExtensionUnavailable, TransportError
from spider.em.ports import StorageClient
from spider.em.reporting import HeldOutcome, Reporter

LOGGER: Final = logging.getLogger("spider.em")


class _SendAlone:
    """The answer for a registration that must be sent as a single RPC."""


_ALONE: Final = _SendAlone()


@attrs.define(eq=False)
class _PendingRegistration:
    """A slot's registration waiting for the batch that carries it, then its answer."""

    assignment: Assignment
    held: HeldOutcome | None = None
    answer: ExecutionContext | EmClientError | _SendAlone | None = None


@attrs.define(eq=False)
class Registrar:
    """Registers task instances for every slot; see the module docstring."""

    storage: StorageClient
    em_id: ExecutionManagerId
    reporter: Reporter
    """Settles the held outcomes that registrations carry."""
    storage_extension: bool = True
    """Whether to call ``RegisterTaskInstances``; cleared for good once storage answers
    UNIMPLEMENTED."""
    carry_outcomes: bool = True
    """Whether registrations carry held outcomes (``ReportAndRegister``); cleared for good
    once storage answers UNIMPLEMENTED."""
    _waiting: list[_PendingRegistration] = attrs.field(factory=list, init=False)
    _sending: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    def can_carry(self) -> bool:
        """Whether a registration may carry a held outcome."""
        return self.storage_extension and self.carry_outcomes

    async def register(
        self, assignment: Assignment, held: HeldOutcome | None = None
    ) -> ExecutionContext:
        """Register ``assignment``'s instance; raises what ``RegisterTaskInstance`` would.

        ``held``, unless a call already took it, goes in the same call and is settled by the
        reporter with that call's answer, or released to its queue if the call cannot carry it.
        """
        if held is not None and held.taken:
            held = None
        if held is not None and not self.can_carry():
            self.reporter.release(held)
            held = None
        if not self.storage_extension:
            return await self.storage.register_task_instance(assignment, self.em_id)
        pending = _PendingRegistration(assignment, held)
        self._waiting.append(pending)
        try:
            while pending.answer is None:
                async with self._sending:
                    if pending.answer is None:
                        batch, self._waiting = self._waiting, []
                        await self._send(batch, pending)
        finally:
            if pending in self._waiting:  # cancelled before any call carried it
                self._waiting.remove(pending)
                if pending.held is not None:
                    self.reporter.release(pending.held)
        answer = pending.answer
        if isinstance(answer, _SendAlone):
            return await self.storage.register_task_instance(assignment, self.em_id)
        if isinstance(answer, EmClientError):
            raise answer
        return answer

    async def _send(self, batch: list[_PendingRegistration], own: _PendingRegistration) -> None:
        held = self._carried(batch)
        answers: Sequence[ExecutionContext | EmClientError | _SendAlone]
        try:
            if held:
                answers = await self._report_and_register(held, batch)
            else:
                answers = await self.storage.register_task_instances(
                    [pending.assignment for pending in batch], self.em_id
                )
        except ExtensionUnavailable as error:
            if self.storage_extension:
                self.storage_extension = False
                LOGGER.info(
                    "Storage does not serve Spider-py's RegisterTaskInstances; registering one "
                    "at a time: %s",
                    error,
                    extra={"em_id": self.em_id},
                )
            answers = [_ALONE] * len(batch)
        except EmClientError as error:
            # No answer for any of them: each caller handles it as its own failed call.
            answers = [error] * len(batch)
        except BaseException:
            # This caller was cancelled (a stop): the others carried in the call retry alone.
            for pending in batch:
                if pending is not own and pending.answer is None:
                    pending.answer = TransportError(
                        "the RegisterTaskInstances call carrying it was cancelled",
                        operation="RegisterTaskInstances",
                    )
            raise
        for pending, answer in zip(batch, answers, strict=True):
            pending.answer = answer

    def _carried(self, batch: list[_PendingRegistration]) -> list[HeldOutcome]:
        """The held outcomes ``batch`` carries that are still worth reporting."""
        held: list[HeldOutcome] = []
        for pending in batch:
            outcome, pending.held = pending.held, None
            if outcome is not None and self.reporter.stale_reason(outcome) is None:
                outcome.taken = True
                held.append(outcome)
        return held

    async def _report_and_register(
        self, held: list[HeldOutcome], batch: list[_PendingRegistration]
    ) -> Sequence[ExecutionContext | EmClientError]:
        """One ``ReportAndRegister``; ``held`` is settled or released whatever happens, and a
        storage without it gets ``RegisterTaskInstances`` (raising what that raises)."""
        settled = False
        try:
            reports, answers = await self.storage.report_and_register(
                [(outcome.target, outcome.outcome) for outcome in held],
                [pending.assignment for pending in batch],
                self.em_id,
            )
            for outcome, error in zip(held, reports, strict=True):
                self.reporter.settle(outcome, error)
            settled = True
            return answers
        except ExtensionUnavailable as error:
            self.carry_outcomes = False
            LOGGER.info(
                "Storage does not serve Spider-py's ReportAndRegister; reporting and "
                "registering separately: %s",
                error,
                extra={"em_id": self.em_id},
            )
        finally:
            if not settled:
                # No answer (or no such call): the reporter sends them on their own.
                for outcome in held:
                    self.reporter.release(outcome)
        return await self.storage.register_task_instances(
            [pending.assignment for pending in batch], self.em_id
        )
