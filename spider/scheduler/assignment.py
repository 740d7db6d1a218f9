"""What the scheduler hands out: ``IssuedAssignment`` (a ``ReadyTask`` placed on an EM)."""

from __future__ import annotations

from typing import Final

import attrs

from spider.core.ids import AssignmentId, SessionId
from spider.core.ready_task import ReadyTask

NO_SESSION: Final = SessionId(0)
"""The session before the first registration with storage."""


@attrs.frozen
class IssuedAssignment:
    """A ready task handed to an execution manager, stamped with the session it belongs to.

    The scheduler's side of an assignment: it keeps the ``ReadyTask`` the task came from, so
    an assignment its EM never acknowledges (``ConsumedAssignment``) can be placed again."""

    id: AssignmentId
    entry: ReadyTask
    session: SessionId
