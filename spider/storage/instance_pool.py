"""``TaskInstancePool``: every live task instance, with its EM and its timeout deadlines.

Instance ids come from a counter that starts at 1 in each storage process; the session check keeps
ids of an earlier process from being confused with these. The pool mirrors the instances held by the
task control blocks: an instance enters both at registration and leaves both when it is reported,
removed, or made stale by its task or job ending (upstream left a failed job's instances in the pool
until their EM died, docs/upstream.md#the-inbound-queue-and-the-task-instance-pool).

An instance dropped while its EM may still run it (its job cancelled or failed, a twin
succeeded) is handed to ``revocations``, for its EM to kill (``spider.storage.revocations``).

Deadlines are in ``trio.current_time()`` seconds (monotonic), not wall time.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, TaskInstanceId
from spider.core.task_graph import TimeoutPolicy
from spider.core.task_id import TaskId
from spider.storage.outage import OutagePeriod
from spider.storage.revocations import InstanceRevocations


@attrs.define(eq=False, slots=True)
class InstanceRecord:
    """One live instance: who runs it and when it times out."""

    id: TaskInstanceId
    resource_group_id: ResourceGroupId
    job_id: JobId
    task_id: TaskId
    execution_manager_id: ExecutionManagerId
    timeout_policy: TimeoutPolicy
    registered_at: float
    soft_deadline: float
    hard_deadline: float
    """When storage itself gives up on it: the hard timeout plus the configured grace."""
    soft_timeout_handled: bool = False


@attrs.define(eq=False)
class TaskInstancePool:
    """Live instances by id, and the id counter."""

    hard_timeout_grace: float
    revocations: InstanceRevocations = attrs.field(factory=InstanceRevocations)
    """Dropped instances whose EMs have not heard yet that storage no longer wants them."""
    _records: dict[TaskInstanceId, InstanceRecord] = attrs.field(factory=dict)
    _next_id: int = 1

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._records

    def add(
        self,
        resource_group_id: ResourceGroupId,
        job_id: JobId,
        task_id: TaskId,
        execution_manager_id: ExecutionManagerId,
        timeout_policy: TimeoutPolicy,
        now: float,
    ) -> InstanceRecord:
        """Allocate an id for a new instance registered at ``now`` and track it."""
        instance_id = TaskInstanceId(self._next_id)
        self._next_id += 1
        record = InstanceRecord(
            instance_id,
            resource_group_id,
            job_id,
            task_id,
            execution_manager_id,
            timeout_policy,
            now,
            now + timeout_policy.soft_timeout_ms / 1000,
            now + timeout_policy.hard_timeout_ms / 1000 + self.hard_timeout_grace,
        )
        self._records[instance_id] = record
        return record

    def get(self, instance_id: TaskInstanceId) -> InstanceRecord | None:
        """The record of a live instance, or ``None``."""
        return self._records.get(instance_id)

    def discard(self, instance_ids: Iterable[TaskInstanceId]) -> None:
        """Forget instances that are no longer live (unknown ids are ignored)."""
        records = self._records
        for instance_id in instance_ids:
            records.pop(instance_id, None)

    def revoke(
        self, instance_ids: Iterable[TaskInstanceId], *, reported: TaskInstanceId | None = None
    ) -> None:
        """Forget instances storage dropped (a task or job ended); each one but ``reported``
        (whose EM has just said it ended) may still be running, so its EM is asked to kill it."""
        records = self._records
        for instance_id in instance_ids:
            record = records.pop(instance_id, None)
            if record is not None and instance_id != reported:
                self.revocations.revoke(
                    record.execution_manager_id, instance_id, record.hard_deadline
                )

    def count_by_execution_manager(self) -> dict[ExecutionManagerId, int]:
        """How many live instances each EM holds (EMs with none are left out)."""
        return dict(collections.Counter(r.execution_manager_id for r in self._records.values()))

    def postpone(self, outage: OutagePeriod) -> int:
        """Move the deadlines of every instance ``outage`` overlapped by the part it overlapped:
        the database could not take their reports then. A hard deadline also keeps at least the
        grace after the outage, for the EM's retried report to land. Returns how many moved."""
        moved = 0
        for record in self._records.values():
            overlap = outage.ended - max(outage.started, record.registered_at)
            if overlap > 0:
                record.soft_deadline += overlap
                record.hard_deadline = max(
                    record.hard_deadline + overlap, outage.ended + self.hard_timeout_grace
                )
                moved += 1
        return moved

    def snapshot(self) -> list[InstanceRecord]:
        """The live records, oldest first, as a list the caller may iterate while awaiting."""
        return list(self._records.values())
