"""How a ``TaskRequest`` becomes an executor ``Execute``: inputs and context per task kind."""

from __future__ import annotations

import math

import ormsgpack
import pytest

from spider.core import (
    EMPTY_FRAME,
    JobId,
    ResourceGroupId,
    TaskContext,
    TaskId,
    TaskInstanceId,
    encode_frame,
    encode_task_outputs,
)
from spider.em.pool import TaskRequest


def request(task_id: TaskId, serialized_task_io: bytes, hard_timeout: float = 5.0) -> TaskRequest:
    return TaskRequest(
        job_id=JobId(42),
        task_id=task_id,
        task_instance_id=TaskInstanceId(1),
        resource_group_id=ResourceGroupId(7),
        package="pkg",
        task_func="fn",
        serialized_task_io=serialized_task_io,
        hard_timeout=hard_timeout,
    )


def test_an_index_task_gets_storage_bytes_as_inputs_and_no_job_outputs() -> None:
    inputs = encode_frame([ormsgpack.packb(10)])
    execute = request(TaskId.index(0), inputs).executor_request()
    assert (execute.package, execute.task_func, execute.raw_inputs) == ("pkg", "fn", inputs)
    # docs/upstream.md#task-data-formats: job 42, Index(0), instance 1, group 7, no outputs.
    assert execute.raw_ctx == bytes.fromhex("952a81a5496e646578000107c0")


@pytest.mark.parametrize("outputs", [[3, -1, -2], []])
def test_a_commit_task_gets_an_empty_frame_and_the_job_outputs_in_its_context(
    outputs: list[int],
) -> None:
    serialized = encode_task_outputs([ormsgpack.packb(value) for value in outputs])
    execute = request(TaskId.COMMIT, serialized).executor_request()
    assert execute.raw_inputs == EMPTY_FRAME
    context = TaskContext.decode(execute.raw_ctx)
    assert context.task_id == TaskId.COMMIT
    assert context.serialized_task_graph_outputs == serialized
    assert [ormsgpack.unpackb(p) for p in context.task_graph_outputs()] == outputs


@pytest.mark.parametrize("serialized_task_io", [b"", b"\x01\x02"])
def test_a_cleanup_task_gets_an_empty_frame_whatever_storage_sent(
    serialized_task_io: bytes,
) -> None:
    execute = request(TaskId.CLEANUP, serialized_task_io).executor_request()
    assert execute.raw_inputs == EMPTY_FRAME
    context = TaskContext.decode(execute.raw_ctx)
    assert context.task_id == TaskId.CLEANUP
    assert context.serialized_task_graph_outputs is None


@pytest.mark.parametrize("hard_timeout", [0.0, -1.0, math.nan, math.inf])
def test_a_hard_timeout_must_be_positive_and_finite(hard_timeout: float) -> None:
    with pytest.raises(ValueError, match="hard_timeout must be a positive number of seconds"):
        request(TaskId.index(0), EMPTY_FRAME, hard_timeout)
