"""Task records: what ``encode_final_records`` stores is what the listing decodes, with the
ending task and the cancelled ones as the change being written leaves them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.core.ids import JobId, TaskInstanceId
from spider.core.task_graph import DEFAULT_EXECUTION_POLICY, TdlContext
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.storage.task_control import TaskControlBlock
from spider.storage.task_records import (
    TaskRecord,
    TaskRecordsError,
    decode_task_records,
    encode_final_records,
)

TIMES = st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False))
ERRORS = st.one_of(st.none(), st.text(max_size=400))


@st.composite
def control_blocks(draw: st.DrawFn) -> TaskControlBlock:
    tcb = TaskControlBlock.new(
        JobId(1),
        TaskId.index(draw(st.integers(0, 100))),
        TdlContext("pkg", "fn"),
        DEFAULT_EXECUTION_POLICY,
        ready=True,
    )
    tcb.state = draw(st.sampled_from(TaskState))
    tcb.instances_started = draw(st.integers(0, 2**32 - 1))
    tcb.started_at = draw(TIMES)
    tcb.ended_at = draw(TIMES)
    tcb.error_message = draw(ERRORS)
    if tcb.state is TaskState.RUNNING:
        tcb.instances = {TaskInstanceId(7)}
    return tcb


def expected(tcb: TaskControlBlock) -> TaskRecord:
    state = tcb.state if tcb.state.is_terminal else TaskState.CANCELLED
    error = (tcb.error_message or "").partition("\n")[0][:300]
    return TaskRecord(state, tcb.instances_started, tcb.started_at, tcb.ended_at, error)


@given(
    tasks=st.lists(control_blocks(), max_size=30),
    now=st.floats(0, 4e9, allow_nan=False),
    ending=st.integers(0, 29),
    ending_state=st.sampled_from([TaskState.SUCCEEDED, TaskState.FAILED]),
    error=ERRORS,
)
def test_records_decode_as_the_change_being_written_leaves_the_tasks(
    tasks: list[TaskControlBlock],
    now: float,
    ending: int,
    ending_state: TaskState,
    error: str | None,
) -> None:
    index = ending if ending < len(tasks) else None
    data = encode_final_records(tasks, now, ending=index, ending_state=ending_state, error=error)
    records = [expected(tcb) for tcb in tasks]
    if index is not None:
        last = records[index]
        records[index] = TaskRecord(
            ending_state,
            last.instances,
            last.started_at,
            now,
            (error or "").partition("\n")[0][:300] if error else last.error,
        )
    assert decode_task_records(data) == records


@given(data=st.binary(max_size=200))
def test_damaged_records_raise_task_records_error_and_nothing_else(data: bytes) -> None:
    try:
        records = decode_task_records(data)
    except TaskRecordsError:
        return
    assert all(isinstance(record, TaskRecord) for record in records)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x28\xb5\x2f\xfd", encode_final_records([], 0.0)[:-1]],
    ids=["empty", "truncated-frame-header", "truncated-frame"],
)
def test_undecodable_records_are_named(data: bytes) -> None:
    with pytest.raises(TaskRecordsError, match=r"do not decode|not in format"):
        decode_task_records(data)
