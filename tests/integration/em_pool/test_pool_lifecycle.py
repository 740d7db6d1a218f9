"""Slots over time: respawns, recycling, warm spares, concurrency, shutdown and closing."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import pytest
import trio

from spider.core.backoff import Backoff
from spider.em.pool import (
    ExecutorSpawnError,
    PoolClosedError,
    PoolConfig,
    PoolFailureKind,
    SlotBusyError,
    TaskFailed,
    open_process_pool,
)
from tests.processes import open_fd_count, running_children

from .pool_helpers import (
    is_running,
    open_pool,
    pool_task,
    single_output,
    task,
    write_script,
)

# Starts the bundled executor unless the file named by BLOCK_FILE exists.
GATED_EXECUTOR = """
import os, sys
if os.path.exists(os.environ["BLOCK_FILE"]):
    sys.exit("blocked by the test")
os.execv(sys.executable, [sys.executable, "-m", "executor_bin"])
"""


@pytest.mark.parametrize("warm_spare", [True, False])
async def test_an_executor_is_replaced_after_exactly_n_tasks(
    package_dir: Path, warm_spare: bool
) -> None:
    async with open_pool(package_dir, recycle_after_tasks=3, warm_spare=warm_spare) as pool:
        slot = pool.slots[0]
        pids = [single_output(await slot.run(pool_task("executor_pid"))) for _ in range(7)]
        assert slot.statistics().executors_replaced == 2
    assert pids == [pids[0]] * 3 + [pids[3]] * 3 + [pids[6]]
    assert len({pids[0], pids[3], pids[6]}) == 3
    assert not is_running(pids[0])
    assert not is_running(pids[3])


async def test_after_a_crash_the_next_task_runs_on_the_warm_spare_at_once(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir, warm_spare=True) as pool:
        slot = pool.slots[0]
        before = slot.statistics()
        assert before.spare_pid is not None
        assert before.spare_pid != before.executor_pid
        crash = await slot.run(task("always_abort"))
        assert isinstance(crash, TaskFailed)
        assert crash.kind == PoolFailureKind.CRASH
        # The spare was started before the crash, so running on it proves nobody waited for a
        # new executor to start.
        assert single_output(await slot.run(pool_task("executor_pid"))) == before.spare_pid
        await slot.wait_spare_ready()
        after = slot.statistics()
        assert after.spare_pid not in (None, before.spare_pid, before.executor_pid)


async def test_two_slots_run_two_tasks_at_the_same_time(package_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "meeting"
    os.mkfifo(fifo)
    results: dict[int, object] = {}
    async with open_pool(package_dir, executors=2) as pool:
        writer, reader = pool.slots

        async def run(slot_index: int, is_writer: bool) -> None:
            slot = pool.slots[slot_index]
            results[slot_index] = single_output(
                await slot.run(pool_task("meet_at_fifo", str(fifo), is_writer))
            )

        # Each side's open() blocks until the other side opens the FIFO: both tasks finish
        # only if they run at the same time.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, writer.index, True)
            nursery.start_soon(run, reader.index, False)
    assert results == {0: True, 1: True}


async def test_a_slot_runs_one_task_at_a_time(package_dir: Path) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slot.run, task("fibonacci", 27))
            await trio.testing.wait_all_tasks_blocked()
            assert slot.statistics().busy
            with pytest.raises(SlotBusyError, match="already running a task"):
                await slot.run(task("add", 1, 2))
            with pytest.raises(SlotBusyError):
                await slot.wait_ready()


async def test_a_failing_respawn_is_retried_with_backoff_until_it_works(
    package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = tmp_path / "block"
    monkeypatch.setenv("BLOCK_FILE", str(block))
    executor = write_script(tmp_path / "gated_executor", GATED_EXECUTOR)
    retried = trio.Event()

    class RetryWatcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Executor respawn failed"):
                retried.set()

    watcher = RetryWatcher()
    logging.getLogger("spider.em.pool").addHandler(watcher)
    try:
        async with open_pool(
            package_dir,
            bin_path=executor,
            respawn_backoff=Backoff(initial=0.05, cap=0.2),
        ) as pool:
            slot = pool.slots[0]
            block.touch()
            await slot.run(task("always_abort"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(slot.wait_ready)
                await retried.wait()
                assert slot.statistics().executor_pid is None
                block.unlink()
            assert single_output(await slot.run(task("add", 2, 2))) == 4
    finally:
        logging.getLogger("spider.em.pool").removeHandler(watcher)


async def test_an_executor_that_cannot_start_fails_the_opening(
    package_dir: Path, tmp_path: Path
) -> None:
    children_before = running_children()
    broken = write_script(tmp_path / "broken_executor", "import sys\nsys.exit(7)\n")
    with pytest.raises(ExecutorSpawnError, match="exited with code 7 before it was ready"):
        async with open_process_pool(PoolConfig(package_dir=package_dir, bin_path=broken)):
            pytest.fail("the pool opened")
    with pytest.raises(ExecutorSpawnError, match="could not start"):
        async with open_process_pool(
            PoolConfig(package_dir=package_dir, bin_path=tmp_path / "missing", warm_spare=False)
        ):
            pytest.fail("the pool opened")
    assert running_children() == children_before


async def test_the_shutdown_deadline_kills_the_running_task_and_refuses_new_ones(
    package_dir: Path, tmp_path: Path
) -> None:
    outcomes = []
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        hanging = slot.statistics().executor_pid
        assert pool.shutdown_deadline == math.inf

        async def run_hanging_task() -> None:
            request = pool_task("spawn_grandchild_and_hang", str(tmp_path / "pid"))
            outcomes.append(await slot.run(request))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_hanging_task)
            await trio.testing.wait_all_tasks_blocked()
            assert slot.statistics().busy
            pool.set_shutdown_deadline(trio.current_time())
        assert outcomes == [
            TaskFailed(
                "killed at shutdown: the execution manager stopped before the task finished",
                PoolFailureKind.SHUTDOWN,
            )
        ]
        assert hanging is not None
        assert not is_running(hanging)
        late = await slot.run(task("add", 1, 2))
        assert isinstance(late, TaskFailed)
        assert late.kind == PoolFailureKind.SHUTDOWN
        assert late.message.startswith("not run")


async def test_cancelling_a_run_kills_its_executor_and_the_slot_recovers(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        running = slot.statistics().executor_pid
        assert running is not None
        with trio.move_on_after(0.3) as cancelled:
            await slot.run(task("fibonacci", 45))
        assert cancelled.cancelled_caught
        assert not is_running(running)
        assert not slot.statistics().busy
        assert single_output(await slot.run(task("add", 1, 2))) == 3


async def test_closing_the_pool_ends_every_executor_and_the_slots(package_dir: Path) -> None:
    async with open_pool(package_dir, executors=2, warm_spare=True) as pool:
        stats = pool.statistics()
        pids = {pid for s in stats for pid in (s.executor_pid, s.spare_pid) if pid is not None}
        assert len(pids) == 4
        assert pids <= running_children()
    assert not any(is_running(pid) for pid in pids)
    with pytest.raises(PoolClosedError):
        await pool.slots[0].run(task("add", 1, 2))


async def test_a_thousand_tasks_leave_no_process_or_descriptor_behind(package_dir: Path) -> None:
    children_before, fds_before = running_children(), open_fd_count()
    async with open_pool(package_dir, recycle_after_tasks=250, warm_spare=True) as pool:
        slot = pool.slots[0]
        for index in range(1000):
            if index in (333, 666):
                outcome = await slot.run(task("always_abort"))
                assert isinstance(outcome, TaskFailed)
                assert outcome.kind == PoolFailureKind.CRASH
            else:
                assert single_output(await slot.run(task("add", index, 1))) == index + 1
            if index % 50 == 0:
                # At most the executor, its spare and one being retired are alive.
                assert len(running_children() - children_before) <= 3
        assert slot.statistics().tasks_run == 1000
    assert running_children() == children_before
    assert open_fd_count() == fds_before
