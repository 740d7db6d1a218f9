"""1000 tasks in a row through one EM: nothing accumulates (executors, file descriptors)."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.processes import open_fd_count, running_children

from .em_harness import fake_cluster, inputs, outputs, running_em
from .fake_services import execution_context, scheduler_assignment

TASKS = 1000


async def test_a_thousand_consecutive_tasks_leave_executors_and_fds_unchanged(
    package_dir: Path,
) -> None:
    children_before = running_children()
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.append(execution_context("add", inputs(0, 0)))
        cluster.scheduler.push(scheduler_assignment(0))
        await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
        executors, fds = running_children(), open_fd_count()
        cluster.storage.register_replies.extend(
            execution_context("add", inputs(n, 1), instance=n) for n in range(1, TASKS + 1)
        )
        cluster.scheduler.push(*(scheduler_assignment(n) for n in range(1, TASKS + 1)))
        with trio.fail_after(120):
            await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == TASKS + 1)
        assert running_children() == executors
        assert open_fd_count() == fds
    assert len(executors - children_before) == 1
    assert cluster.storage.failures == []
    assert [outputs(s.outputs)[0] for s in cluster.storage.successes[1:]] == [
        n + 1 for n in range(1, TASKS + 1)
    ]
    assert cluster.scheduler.outstanding == set()
