"""``TaskRecord``: what the task listing shows of one regular task once its job's graph is gone.

While a job runs, its ``Dataflow`` holds a ``TaskControlBlock`` per task. When the regular tasks
are over (the last one succeeded, one failed for good, or the job was cancelled), the dataflow is
dropped to release the graph and every intermediate value; what ``GetJobTasks`` still needs of
each task (state, instance count, times, last error) is kept as records, encoded once, written in
the same transaction as the job's state change (table ``task_records``, docs/storage-persistence.md)
and held in the job cache in their encoded form until the job is evicted.

The encoding is columnar msgpack under zstd: a million-task job's records take a few megabytes,
and the per-task cost on the hot path is nothing (they are written once per job).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs
import ormsgpack

from spider.core.bounds import summary_line
from spider.core.compression import compress, decompress
from spider.core.errors import CompressionError
from spider.core.task_state import TaskState
from spider.storage.task_control import TaskControlBlock

_FORMAT: Final = 1
_STATE_CODES: Final = {state: code for code, state in enumerate(TaskState)}
_STATES: Final = tuple(TaskState)


@attrs.frozen
class TaskRecord:
    """One regular task, as the task listing shows it."""

    state: TaskState
    instances: int
    """Instances ever registered (retries and duplicates included)."""
    started_at: float | None
    """Wall-clock seconds when the first instance registered; ``None`` if none did."""
    ended_at: float | None
    """Wall-clock seconds when the task succeeded or failed for good."""
    error: str = ""
    """The first line of the task's last failure (``summary_line``); empty without one. The
    job's error holds the failure that ended it in full."""
    running: int = 0
    """Instances live now (always 0 once the job's regular tasks are over)."""

    @classmethod
    def of(cls, tcb: TaskControlBlock) -> TaskRecord:
        """A task as its control block stands (a job still running, or a commit/cleanup task)."""
        return cls(
            tcb.state,
            tcb.instances_started,
            tcb.started_at,
            tcb.ended_at,
            summary_line(tcb.error_message),
            len(tcb.instances),
        )


def encode_final_records(
    tasks: Sequence[TaskControlBlock],
    now: float,
    *,
    ending: int | None = None,
    ending_state: TaskState = TaskState.SUCCEEDED,
    error: str | None = None,
) -> bytes:
    """The stored records of the regular tasks as they will be once the change being written
    applies: task ``ending`` moves to ``ending_state`` at ``now`` (with ``error`` if it failed)
    and every other task that has not ended is cancelled.

    They are built before the database write so that they are written in the same transaction
    as the job's new state; the stored form is zstd of columnar msgpack, built straight from the
    control blocks (no object per task: a million-task job ends in a fraction of a second).
    """
    cancelled = _STATE_CODES[TaskState.CANCELLED]
    states = bytearray(
        _STATE_CODES[tcb.state] if tcb.state.is_terminal else cancelled for tcb in tasks
    )
    ended_at = [tcb.ended_at for tcb in tasks]
    errors = {
        str(i): summary_line(tcb.error_message) for i, tcb in enumerate(tasks) if tcb.error_message
    }
    if ending is not None:
        states[ending] = _STATE_CODES[ending_state]
        ended_at[ending] = now
        if error:
            errors[str(ending)] = summary_line(error)
    columns = {
        "format": _FORMAT,
        "states": bytes(states),
        "instances": [tcb.instances_started for tcb in tasks],
        "started_at": [tcb.started_at for tcb in tasks],
        "ended_at": ended_at,
        "errors": errors,
    }
    return compress(ormsgpack.packb(columns))


class TaskRecordsError(ValueError):
    """Stored task records that do not decode (a newer format, or damage)."""


def decode_task_records(data: bytes) -> list[TaskRecord]:
    """The records ``encode_task_records`` wrote; ``TaskRecordsError`` if they do not decode."""
    try:
        columns = ormsgpack.unpackb(decompress(data))
    except (CompressionError, ormsgpack.MsgpackDecodeError) as exc:
        raise TaskRecordsError(f"stored task records do not decode: {exc}") from exc
    if not isinstance(columns, dict) or columns.get("format") != _FORMAT:
        raise TaskRecordsError(f"stored task records are not in format {_FORMAT}")
    try:
        errors = columns["errors"]
        rows = zip(
            columns["states"],
            columns["instances"],
            columns["started_at"],
            columns["ended_at"],
            strict=True,
        )
        return [
            TaskRecord(_STATES[code], instances, started_at, ended_at, errors.get(str(index), ""))
            for index, (code, instances, started_at, ended_at) in enumerate(rows)
        ]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise TaskRecordsError(f"stored task records do not decode: {exc}") from exc
