"""``ProcessPool.revoke``: storage's revoked instances are killed with their process tree, end as
``revoked`` (not a crash), and the slot runs its next task on a replacement executor."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from spider.core import TaskInstanceId
from spider.em.pool import PoolFailureKind, TaskFailed, TaskOutcome

from .pool_helpers import exits_within, open_pool, single_output, task

REVOKED = TaskInstanceId(1)  # the instance id ``task()`` gives every request


async def test_a_revoked_task_dies_with_its_process_tree_and_the_slot_runs_the_next(
    package_dir: Path, tmp_path: Path
) -> None:
    pids_path, started = tmp_path / "tree.pids", tmp_path / "started"
    os.mkfifo(started)
    outcomes: list[TaskOutcome] = []
    ended = trio.Event()
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]

        async def run_hanging() -> None:
            request = task("spawn_process_tree", str(pids_path), str(started), True)
            outcomes.append(await slot.run(request))
            ended.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_hanging)
            # Returns once the task has written its pids and said so (the FIFO's writer closed).
            await trio.to_thread.run_sync(started.read_bytes)
            assert pool.revoke([TaskInstanceId(99)]) == []  # not running here: ignored
            assert pool.revoke([REVOKED]) == [REVOKED]
            with trio.fail_after(1):
                await ended.wait()
        assert outcomes == [
            TaskFailed(
                "killed: storage revoked the task instance (its job ended or a twin succeeded)",
                PoolFailureKind.REVOKED,
            )
        ]
        for pid in map(int, pids_path.read_text().split()):
            assert await exits_within(pid, seconds=1), pid
        assert slot.statistics().executors_replaced == 1
        assert single_output(await slot.run(task("fibonacci", 7))) == 13


async def test_an_instance_revoked_before_its_slot_starts_it_does_not_run(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        executor = slot.statistics().executor_pid
        assert pool.revoke([REVOKED]) == []
        outcome = await slot.run(task("fibonacci", 7))
        assert isinstance(outcome, TaskFailed)
        assert outcome.kind == PoolFailureKind.REVOKED
        assert slot.statistics().executor_pid == executor  # nothing to kill
        assert single_output(await slot.run(task("fibonacci", 7))) == 13
