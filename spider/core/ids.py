"""Typed ids. ``NewType`` keeps them plain ``int`` at run time and distinct for mypy.

Job, resource group, execution manager, scheduler and session ids are storage's database ids
(starting at 1); task-instance ids are storage's in-memory counter; assignment ids are the
scheduler's in-memory counter (starting at 0). All are unsigned 64-bit on the wire.
"""

from __future__ import annotations

from typing import NewType

JobId = NewType("JobId", int)
ResourceGroupId = NewType("ResourceGroupId", int)
TaskInstanceId = NewType("TaskInstanceId", int)
ExecutionManagerId = NewType("ExecutionManagerId", int)
SchedulerId = NewType("SchedulerId", int)
SessionId = NewType("SessionId", int)
AssignmentId = NewType("AssignmentId", int)

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
