"""A job's life cycle: a commit that publishes the outputs, a cleanup that undoes a cancelled
job, a task that fails before it succeeds (retries), and a task that takes its time (to cancel).

The commit and cleanup leave ``commit-<job>`` and ``cleanup-<job>`` files in the state directory,
the stand-ins for whatever a real job publishes or removes.
"""

from __future__ import annotations

import time

from spider.tdl import TaskContext, job_outputs, task

from ._journal import journaled, state_dir, task_label


@task(name="lifecycle::commit")
def commit(ctx: TaskContext) -> None:
    """Publish the job's outputs (ints): write them, one per line, to ``commit-<job>``."""
    with journaled(ctx):
        outputs: list[int] = job_outputs(ctx, int)
        marker = state_dir() / f"commit-{ctx.job_id}"
        marker.write_text("".join(f"{value}\n" for value in outputs))


@task(name="lifecycle::cleanup")
def cleanup(ctx: TaskContext) -> None:
    """Clean up after a cancelled job: write ``cleanup-<job>``."""
    with journaled(ctx):
        (state_dir() / f"cleanup-{ctx.job_id}").write_text("cleaned up\n")


@task(name="flaky::increment")
def increment(ctx: TaskContext, value: int, failures: int) -> int:
    """``value + 1``, but only on attempt ``failures + 1``: the attempts before it raise.

    Attempts are counted in ``attempts-<job>-<task>``, so a retry on another worker sees them.
    Give the task ``max_num_retry >= failures`` for the job to succeed.
    """
    with journaled(ctx):
        counter = state_dir() / f"attempts-{ctx.job_id}-{task_label(ctx)}"
        attempt = len(counter.read_text().splitlines()) + 1 if counter.exists() else 1
        with counter.open("a") as file:
            file.write(f"{attempt}\n")
        if attempt <= failures:
            raise RuntimeError(f"attempt {attempt} fails on purpose ({failures} must fail)")
        return value + 1


@task(name="lifecycle::wait")
def wait(ctx: TaskContext, milliseconds: int) -> int:
    """Sleep, then return ``milliseconds``: a task that is still running when a test cancels."""
    with journaled(ctx):
        time.sleep(milliseconds / 1000)
        return milliseconds
