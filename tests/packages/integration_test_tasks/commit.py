"""Termination tasks: a commit task that checks the job outputs, and a cleanup task."""

from __future__ import annotations

import sys

from spider.core import TaskKind
from spider.tdl import TaskContext, job_outputs, task


@task
def assert_outputs_sum_zero(ctx: TaskContext) -> None:
    """Succeed only as the commit task of a job whose int outputs sum to zero."""
    if ctx.task_id.kind is not TaskKind.COMMIT:
        raise RuntimeError(f"assert_outputs_sum_zero must run as a commit task, not {ctx.task_id}")
    outputs: list[int] = job_outputs(ctx, int)
    if not outputs:
        raise RuntimeError("assert_outputs_sum_zero: task-graph outputs empty")
    total = sum(outputs)
    if total != 0:
        raise RuntimeError(f"assert_outputs_sum_zero: outputs do not sum to zero: got {total}")


@task
def cleanup_marker(ctx: TaskContext) -> None:
    """A cleanup task: takes an empty input frame and reports which job it cleaned up."""
    print(f"cleanup_marker: job {ctx.job_id} ({ctx.task_id})", file=sys.stderr, flush=True)
