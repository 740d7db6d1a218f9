"""``TaskId``: which task of a job an assignment, instance or report is about.

A job's regular tasks are numbered by insertion order (``TaskId.index(n)``); the two termination
tasks, commit and cleanup, have their own kinds.
"""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

from spider.core.ids import U64_MAX


class TaskKind(enum.Enum):
    INDEX = "Index"
    COMMIT = "Commit"
    CLEANUP = "Cleanup"


@attrs.frozen(order=False)
class TaskId:
    """A regular task's index, or one of the termination tasks.

    Build with ``TaskId.index(n)``, ``TaskId.COMMIT`` or ``TaskId.CLEANUP``.
    """

    kind: TaskKind
    position: int | None = attrs.field(default=None)

    COMMIT: ClassVar[TaskId]
    CLEANUP: ClassVar[TaskId]

    def __attrs_post_init__(self) -> None:
        if (self.kind is TaskKind.INDEX) != (self.position is not None):
            raise ValueError("a TaskId has a position if and only if it is an index task")
        if self.position is not None and not 0 <= self.position <= U64_MAX:
            raise ValueError(f"task index {self.position} is outside 0..2**64-1")

    @classmethod
    def index(cls, position: int) -> TaskId:
        """The regular task at ``position`` in the graph's insertion order."""
        return cls(TaskKind.INDEX, position)

    @property
    def is_termination(self) -> bool:
        """True for the commit and cleanup tasks."""
        return self.kind is not TaskKind.INDEX

    def __str__(self) -> str:
        if self.position is not None:
            return f"Index({self.position})"
        return self.kind.value


TaskId.COMMIT = TaskId(TaskKind.COMMIT)
TaskId.CLEANUP = TaskId(TaskKind.CLEANUP)
