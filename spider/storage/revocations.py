"""``InstanceRevocations``: running instances storage no longer wants, per EM, until it has heard.

An instance is *revoked* when storage drops it while its EM may still be running it: its job was
cancelled or failed, or a twin instance of the same task (a soft-timeout duplicate) succeeded.
Spider-py's ``WaitRevokedInstances`` (``protos/spider_py/revocation.proto``) long-polls the
revocations of one EM, which kills those instances instead of letting them run to their end.

Every revocation is stamped with a revision, one counter for the whole storage process, and an
EM's poll names the revision of its previous answer: that acknowledges every revocation of that
EM up to it, which is then forgotten. Entries also go when the instance is reported anyway (it
ended before the kill; the report is refused as stale), when its EM is declared dead, and once
its hard deadline has passed (the EM's own hard timeout has killed it by then).

Nothing here is durable. A restarted storage has no revocations: the instances of the earlier
process are fenced by the session check, so their reports are refused; they run to their end on
their EMs as they did before this extension (docs/execution-manager.md, "Cancel: killing the
instances storage no longer wants").
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable

import attrs
import trio
from trio_util import AsyncValue

from spider.core.ids import ExecutionManagerId, TaskInstanceId


@attrs.frozen
class RevokedInstance:
    """One revocation: when it was made (the revision) and when storage stops caring."""

    revision: int
    hard_deadline: float
    """The instance's hard deadline (monotonic seconds): past it, its EM has killed it anyway."""


@attrs.frozen
class RevocationAnswer:
    """What one poll answers: the revision to acknowledge next time, and the instances."""

    revision: int
    instance_ids: tuple[TaskInstanceId, ...]


@attrs.define(eq=False)
class InstanceRevocations:
    """The revocations not yet acknowledged, per EM, and the revision counter."""

    _revision: AsyncValue[int] = attrs.field(factory=lambda: AsyncValue(0))
    _by_em: dict[ExecutionManagerId, dict[TaskInstanceId, RevokedInstance]] = attrs.field(
        factory=dict
    )
    _em_of: dict[TaskInstanceId, ExecutionManagerId] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self._em_of)

    @property
    def revision(self) -> int:
        """The revision of the latest revocation (0 before the first)."""
        value: int = self._revision.value
        return value

    def revoke(
        self,
        execution_manager_id: ExecutionManagerId,
        instance_id: TaskInstanceId,
        hard_deadline: float,
    ) -> None:
        """Ask ``execution_manager_id`` to kill ``instance_id``; wakes its poll."""
        revision = self._revision.value + 1
        self._by_em.setdefault(execution_manager_id, {})[instance_id] = RevokedInstance(
            revision, hard_deadline
        )
        self._em_of[instance_id] = execution_manager_id
        self._revision.value = revision

    def pending(self, execution_manager_id: ExecutionManagerId) -> list[TaskInstanceId]:
        """Every revocation of the EM not acknowledged yet (for tests and status)."""
        return list(self._by_em.get(execution_manager_id, {}))

    def acknowledge(self, execution_manager_id: ExecutionManagerId, known_revision: int) -> None:
        """The EM has seen every revocation up to ``known_revision``: forget those."""
        entries = self._by_em.get(execution_manager_id)
        if not entries:
            return
        for instance_id in [i for i, e in entries.items() if e.revision <= known_revision]:
            del entries[instance_id]
            del self._em_of[instance_id]
        if not entries:
            del self._by_em[execution_manager_id]

    async def wait(
        self, execution_manager_id: ExecutionManagerId, known_revision: int, wait_sec: float
    ) -> RevocationAnswer:
        """Acknowledge up to ``known_revision``, then answer the EM's later revocations: at once
        if there are any, else at the first one or after ``wait_sec`` (then with none)."""
        self.acknowledge(execution_manager_id, known_revision)
        # The revision answered is read together with the instances, with no checkpoint between:
        # the EM acknowledges it next time, so it must not cover a revocation left out.
        answer = self._answer(execution_manager_id, known_revision)
        if answer.instance_ids:
            await trio.lowlevel.checkpoint()
            return answer
        with trio.move_on_after(wait_sec):
            while not answer.instance_ids:
                await self._revision.wait_value(functools.partial(operator.lt, answer.revision))
                answer = self._answer(execution_manager_id, known_revision)
        return answer

    def _answer(
        self, execution_manager_id: ExecutionManagerId, known_revision: int
    ) -> RevocationAnswer:
        entries = self._by_em.get(execution_manager_id, {})
        found = tuple(i for i, e in entries.items() if e.revision > known_revision)
        return RevocationAnswer(self._revision.value, found)

    def forget_instance(self, instance_id: TaskInstanceId) -> None:
        """The instance was reported after all (it ended before its EM killed it)."""
        execution_manager_id = self._em_of.pop(instance_id, None)
        if execution_manager_id is None:
            return
        entries = self._by_em[execution_manager_id]
        del entries[instance_id]
        if not entries:
            del self._by_em[execution_manager_id]

    def forget_execution_managers(
        self, execution_manager_ids: Iterable[ExecutionManagerId]
    ) -> None:
        """The EMs were declared dead: nothing runs there that storage could still stop."""
        for execution_manager_id in execution_manager_ids:
            for instance_id in self._by_em.pop(execution_manager_id, {}):
                del self._em_of[instance_id]

    def expire(self, now: float) -> int:
        """Forget revocations whose hard deadline has passed; return how many."""
        expired = [
            instance_id
            for entries in self._by_em.values()
            for instance_id, entry in entries.items()
            if entry.hard_deadline <= now
        ]
        for instance_id in expired:
            self.forget_instance(instance_id)
        return len(expired)
