"""``TaskRequest``: one task instance to run, and how it becomes an executor ``Execute``."""

from __future__ import annotations

import math

import attrs

from spider.core import EMPTY_FRAME, TaskContext, TaskId, TaskKind
from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.executor.protocol import Execute


def _positive_seconds(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"TaskRequest.hard_timeout must be a positive number of seconds, got {value!r}"
        )


@attrs.frozen
class TaskRequest:
    """A registered task instance, with what storage sent for it.

    ``serialized_task_io`` is storage's ``ExecutionContext.serialized_task_io``: the inputs wire
    frame of a regular task, the job's ``SerializedTaskOutputs`` for the commit task, and
    (usually empty) nothing useful for the cleanup task.
    """

    job_id: JobId
    task_id: TaskId
    task_instance_id: TaskInstanceId
    resource_group_id: ResourceGroupId
    package: str
    task_func: str
    serialized_task_io: bytes
    hard_timeout: float = attrs.field(validator=_positive_seconds)
    """Seconds the whole round trip to the executor may take before the executor is killed."""

    def task_context(self) -> TaskContext:
        """The ``TaskContext`` the task sees; only the commit task gets the job's outputs."""
        outputs = self.serialized_task_io if self.task_id.kind is TaskKind.COMMIT else None
        return TaskContext(
            self.job_id, self.task_id, self.task_instance_id, self.resource_group_id, outputs
        )

    def executor_request(self) -> Execute:
        """The ``Execute`` frame for this task.

        Regular tasks get ``serialized_task_io`` as their input frame. Termination tasks take no
        inputs, so they get the empty frame: the commit task's ``serialized_task_io`` goes into
        its context instead, and the cleanup task's is ignored (upstream passed storage's empty
        bytes through, which no package can unframe).
        """
        raw_inputs = self.serialized_task_io if self.task_id.kind is TaskKind.INDEX else EMPTY_FRAME
        return Execute(self.package, self.task_func, self.task_context().encode(), raw_inputs)
