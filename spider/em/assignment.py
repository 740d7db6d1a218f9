"""What the EM works on: a scheduler's assignment, storage's execution context, report targets."""

from __future__ import annotations

import attrs

from spider.core import TaskId
from spider.core.assignment import ConsumedAssignment
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)


@attrs.frozen
class Registration:
    """Storage's answer to ``RegisterExecutionManager``: who we are, in which session."""

    em_id: ExecutionManagerId
    session: SessionId


@attrs.frozen
class Assignment:
    """A task the scheduler handed to this EM, stamped with the storage session it came from."""

    id: AssignmentId
    scheduler_id: SchedulerId
    job_id: JobId
    task_id: TaskId
    resource_group_id: ResourceGroupId
    session: SessionId

    @property
    def record(self) -> ConsumedAssignment:
        """The acknowledgement to send once the EM has taken responsibility for it."""
        return ConsumedAssignment(self.id, self.scheduler_id)


@attrs.frozen
class ExecutionContext:
    """Storage's answer to ``RegisterTaskInstance``: the instance and how to run it."""

    task_instance_id: TaskInstanceId
    package: str
    task_func: str
    soft_timeout_ms: int
    hard_timeout_ms: int
    """Always > 0: the client rejects a zero hard timeout as a protocol error."""
    serialized_task_io: bytes


@attrs.frozen
class ReportTarget:
    """Which task instance an outcome report is about, in the assignment's session."""

    job_id: JobId
    task_id: TaskId
    task_instance_id: TaskInstanceId
    em_id: ExecutionManagerId
    session: SessionId


@attrs.frozen
class RevokedInstances:
    """Storage's answer to Spider-py's ``WaitRevokedInstances``: instances to kill, and the
    cursor (session and revision) that the next poll sends back to acknowledge them."""

    session: SessionId
    revision: int
    instance_ids: tuple[TaskInstanceId, ...]
