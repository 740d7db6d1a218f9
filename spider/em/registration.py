"""Task-instance registrations of all slots, coalesced into ``RegisterTaskInstances`` calls.

A slot registers its assignment only when it is about to run it (storage starts the instance's
timeouts at registration), so registrations cannot be gathered ahead of time. Instead, with
Spider-py's execution extension, one ``RegisterTaskInstances`` is in flight at a time and the
registrations other slots ask for meanwhile wait for it and go together in the next one. Each
caller gets exactly what a ``RegisterTaskInstance`` of its own would have given it: the execution
context or the same ``EmClientError``, which the dispatch loop retries or handles as before.

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

LOGGER: Final = logging.getLogger("spider.em")


class _SendAlone:
    """The answer for a registration that must be sent as a single RPC."""


_ALONE: Final = _SendAlone()


@attrs.define(eq=False)
class _PendingRegistration:
    """A slot's registration waiting for the batch that carries it, then its answer."""

    assignment: Assignment
    answer: ExecutionContext | EmClientError | _SendAlone | None = None


@attrs.define(eq=False)
class Registrar:
    """Registers task instances for every slot; see the module docstring."""

    storage: StorageClient
    em_id: ExecutionManagerId
    storage_extension: bool = True
    """Whether to call ``RegisterTaskInstances``; cleared for good once storage answers
    UNIMPLEMENTED."""
    _waiting: list[_PendingRegistration] = attrs.field(factory=list, init=False)
    _sending: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    async def register(self, assignment: Assignment) -> ExecutionContext:
        """Register ``assignment``'s instance; raises what ``RegisterTaskInstance`` would."""
        if not self.storage_extension:
            return await self.storage.register_task_instance(assignment, self.em_id)
        pending = _PendingRegistration(assignment)
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
        answer = pending.answer
        if isinstance(answer, _SendAlone):
            return await self.storage.register_task_instance(assignment, self.em_id)
        if isinstance(answer, EmClientError):
            raise answer
        return answer

    async def _send(self, batch: list[_PendingRegistration], own: _PendingRegistration) -> None:
        answers: Sequence[ExecutionContext | EmClientError | _SendAlone]
        try:
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
