"""``TaskControlBlock``: one task's state, live instances and remaining retries.

A regular task starts ``Pending`` (waiting for parents) or ``Ready`` (an input task); the commit
and cleanup tasks start ``Ready``. Registering an instance makes it ``Running``; it ends
``Succeeded``, ``Failed`` or ``Cancelled``, and a terminal task holds no instance. Checks raise
``CacheStale`` and change nothing; mutations never raise.
"""

from __future__ import annotations

import attrs

from spider.core.ids import JobId, TaskInstanceId
from spider.core.task_graph import ExecutionPolicy, TdlContext
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.storage.errors import CacheStale, StaleReason


@attrs.define(eq=False, slots=True)
class TaskControlBlock:
    """The mutable state of one task of a cached job."""

    job_id: JobId
    task_id: TaskId
    tdl_context: TdlContext
    policy: ExecutionPolicy
    state: TaskState
    retries_left: int
    instances: set[TaskInstanceId] = attrs.field(factory=set)
    error_message: str | None = None
    retry_due: float | None = None
    """While the task waits out its retry delay, when it ends (monotonic seconds): until then
    it is not offered to schedulers, not even by a resend of all ready work."""
    instances_started: int = 0
    """Every instance ever registered, retries and duplicates included (the task listing)."""
    started_at: float | None = None
    """Wall-clock seconds when the first instance registered."""
    ended_at: float | None = None
    """Wall-clock seconds when the task succeeded or failed for good."""

    @classmethod
    def new(
        cls,
        job_id: JobId,
        task_id: TaskId,
        tdl_context: TdlContext,
        policy: ExecutionPolicy,
        *,
        ready: bool,
    ) -> TaskControlBlock:
        """A fresh task with its full retry budget."""
        state = TaskState.READY if ready else TaskState.PENDING
        return cls(job_id, task_id, tdl_context, policy, state, policy.max_num_retry)

    @property
    def offerable(self) -> bool:
        """Ready and not waiting out a retry delay: a resend of ready work offers it."""
        return self.state is TaskState.READY and self.retry_due is None

    def _describe(self) -> str:
        return f"task {self.task_id} of job {self.job_id}"

    def check_can_register(self) -> None:
        """Raise ``CacheStale`` unless one more instance may start now."""
        if self.state.is_terminal:
            raise CacheStale(
                StaleReason.TASK_ALREADY_TERMINATED, f"{self._describe()} is {self.state.value}"
            )
        if self.state is TaskState.PENDING:
            raise CacheStale(
                StaleReason.TASK_NOT_READY,
                f"{self._describe()} is Pending (its parents have not all succeeded)",
            )
        limit = self.policy.max_num_instances
        if len(self.instances) >= limit:
            raise CacheStale(
                StaleReason.TASK_INSTANCE_LIMIT_EXCEEDED,
                f"{self._describe()} already has {len(self.instances)} live instance(s), "
                f"its limit is {limit}",
            )

    def add_instance(self, instance_id: TaskInstanceId, now: float) -> None:
        """Record a live instance (after ``check_can_register``), registered at ``now``."""
        self.instances.add(instance_id)
        self.instances_started += 1
        if self.started_at is None:
            self.started_at = now
        self.state = TaskState.RUNNING
        self.retry_due = None

    def check_instance(self, instance_id: TaskInstanceId) -> None:
        """Raise ``CacheStale`` unless ``instance_id`` is a live instance of this task."""
        if instance_id in self.instances:
            return
        if self.state.is_terminal:
            raise CacheStale(
                StaleReason.TASK_ALREADY_TERMINATED, f"{self._describe()} is {self.state.value}"
            )
        raise CacheStale(
            StaleReason.INVALID_TASK_INSTANCE_ID,
            f"instance {instance_id} is not a live instance of {self._describe()} "
            "(already reported, timed out or removed)",
        )

    def remove_instance(self, instance_id: TaskInstanceId) -> bool:
        """Drop a live instance without consuming a retry; return whether it was live.

        A running task left without instances is ready again.
        """
        if instance_id not in self.instances:
            return False
        self.instances.discard(instance_id)
        if self.state is TaskState.RUNNING and not self.instances:
            self.state = TaskState.READY
        return True

    def consume_retry(self, instance_id: TaskInstanceId, error_summary: str) -> None:
        """Drop a failed instance and use one retry (the caller checked ``retries_left > 0``).

        Only a summary of the failure is kept: a task that fails and retries a million times
        must not hold a million messages."""
        self.remove_instance(instance_id)
        self.retries_left -= 1
        self.error_message = error_summary

    def finish(
        self, state: TaskState, error_message: str | None = None, *, now: float | None = None
    ) -> set[TaskInstanceId]:
        """Move to a terminal ``state`` (at ``now``, if it ran); return the instances that were
        live (now stale)."""
        dropped = self.instances
        self.instances = set()
        self.state = state
        self.retry_due = None
        self.ended_at = now
        if error_message is not None:
            self.error_message = error_message
        return dropped

    def cancel(self) -> set[TaskInstanceId]:
        """Cancel the task unless it already ended; return the instances made stale."""
        if self.state.is_terminal:
            return set()
        return self.finish(TaskState.CANCELLED)
