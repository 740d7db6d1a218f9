"""What flows through the scheduler: ready entries from storage, assignments to EMs."""

from __future__ import annotations

from typing import Final

import attrs

from spider.core.ids import AssignmentId, JobId, ResourceGroupId, SessionId
from spider.core.task_id import TaskId

NO_SESSION: Final = SessionId(0)
"""The session before the first registration with storage."""


@attrs.frozen
class ReadyEntry:
    """One entry of storage's inbound queue: a task of a job that is ready to run."""

    resource_group_id: ResourceGroupId
    job_id: JobId
    task_id: TaskId


@attrs.frozen
class IssuedAssignment:
    """A ready task handed to an execution manager, stamped with the session it belongs to.

    The scheduler's side of an assignment: it keeps the ``ReadyEntry`` the task came from, so
    an assignment its EM never acknowledges (``ConsumedAssignment``) can be placed again."""

    id: AssignmentId
    entry: ReadyEntry
    session: SessionId
