"""``TaskContext``: what a running task knows about itself, msgpack-encoded as Spider does.

Encoding (rmp-serde's defaults): an array of five elements
``[job_id, task_id, task_instance_id, resource_group_id, serialized_task_graph_outputs | nil]``
with ``task_id`` = ``{"Index": n}`` | ``"Commit"`` | ``"Cleanup"``. The task-graph outputs
(``SerializedTaskOutputs`` bytes) are present if and only if the task is the commit task.
Decoding also accepts what rmp-serde accepts: a map with the field names, integer variant
indices, and bytes as an array of small ints.
"""

from __future__ import annotations

from typing import Any

import attrs
import ormsgpack

from spider.core.errors import CodecError, TaskContextError
from spider.core.ids import U64_MAX, JobId, ResourceGroupId, TaskInstanceId
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_outputs import decode_task_outputs

_FIELDS = (
    "job_id",
    "task_id",
    "task_instance_id",
    "resource_group_id",
    "serialized_task_graph_outputs",
)
# rmp-serde accepts a variant by name or by its index in declaration order.
_VARIANTS: dict[Any, TaskKind] = {kind.value: kind for kind in TaskKind} | dict(
    enumerate((TaskKind.INDEX, TaskKind.COMMIT, TaskKind.CLEANUP))
)


@attrs.frozen
class TaskContext:
    """The identity of one task instance, and for a commit task the job's outputs."""

    job_id: JobId
    task_id: TaskId
    task_instance_id: TaskInstanceId
    resource_group_id: ResourceGroupId
    serialized_task_graph_outputs: bytes | None = None

    def __attrs_post_init__(self) -> None:
        is_commit = self.task_id.kind is TaskKind.COMMIT
        if is_commit and self.serialized_task_graph_outputs is None:
            raise TaskContextError("invalid task context: a commit task needs the job outputs")
        if not is_commit and self.serialized_task_graph_outputs is not None:
            raise TaskContextError(
                f"invalid task context: only the commit task gets job outputs, not {self.task_id}"
            )

    def task_graph_outputs(self) -> list[bytes]:
        """The job's outputs as msgpack payloads (commit task only)."""
        if self.serialized_task_graph_outputs is None:
            raise TaskContextError(
                f"task {self.task_id} is not the commit task: it has no task-graph outputs"
            )
        return decode_task_outputs(self.serialized_task_graph_outputs)

    def encode(self) -> bytes:
        """The msgpack bytes Spider's executors and packages expect."""
        return ormsgpack.packb(
            [
                self.job_id,
                _encode_task_id(self.task_id),
                self.task_instance_id,
                self.resource_group_id,
                self.serialized_task_graph_outputs,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> TaskContext:
        """Parse msgpack ``TaskContext`` bytes; any defect raises ``TaskContextError``."""
        try:
            raw = ormsgpack.unpackb(data, option=ormsgpack.OPT_NON_STR_KEYS)
        except ValueError as exc:
            raise TaskContextError(f"failed to deserialize `TaskContext`: {exc}") from exc
        if isinstance(raw, dict):
            missing = [name for name in _FIELDS if name not in raw]
            if missing:
                raise TaskContextError(
                    f"failed to deserialize `TaskContext`: missing field(s) {', '.join(missing)}"
                )
            raw = [raw[name] for name in _FIELDS]
        if not isinstance(raw, list) or len(raw) != len(_FIELDS):
            raise TaskContextError(
                "failed to deserialize `TaskContext`: expected an array of 5 elements, "
                f"got {_describe(raw)}"
            )
        job_id, task_id, instance_id, group_id, outputs = raw
        try:
            return cls(
                job_id=JobId(_u64(job_id, "job_id")),
                task_id=_decode_task_id(task_id),
                task_instance_id=TaskInstanceId(_u64(instance_id, "task_instance_id")),
                resource_group_id=ResourceGroupId(_u64(group_id, "resource_group_id")),
                serialized_task_graph_outputs=_optional_bytes(outputs),
            )
        except TaskContextError:
            raise
        except CodecError as exc:
            raise TaskContextError(f"failed to deserialize `TaskContext`: {exc}") from exc


def _encode_task_id(task_id: TaskId) -> Any:
    if task_id.position is not None:
        return {"Index": task_id.position}
    return task_id.kind.value


def _decode_task_id(raw: Any) -> TaskId:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        kind = _variant(raw)
        if kind is TaskKind.INDEX:
            raise TaskContextError("invalid task id: the Index variant needs a value")
        return TaskId(kind)
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, value),) = raw.items()
        if _variant(key) is TaskKind.INDEX:
            return TaskId.index(_u64(value, "task_id.Index"))
    raise TaskContextError(
        f'invalid task id {raw!r}: expected {{"Index": n}}, "Commit" or "Cleanup"'
    )


def _variant(key: Any) -> TaskKind:
    # Exact types only: True and 1.0 compare equal to 1 but are not variant indices.
    kind = _VARIANTS.get(key) if type(key) in (str, int) else None
    if kind is not None:
        return kind
    raise TaskContextError(f"invalid task id: unknown variant {key!r}")


def _u64(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX:
        return value
    raise TaskContextError(f"invalid task context: {name} must be a u64, got {_describe(value)}")


def _optional_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    # rmp-serde writes Vec<u8> as an array of small ints.
    if isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255 for item in value
    ):
        return bytes(value)
    raise TaskContextError(
        "invalid task context: serialized_task_graph_outputs must be bytes or nil, "
        f"got {_describe(value)}"
    )


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} elements"
    return f"a {type(value).__name__}"
