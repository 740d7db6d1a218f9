"""Every way a task ends, through a real pool of real executors."""

from __future__ import annotations

import re
from pathlib import Path

import ormsgpack
import pytest

from spider.core import TaskId, encode_task_outputs
from spider.em.pool import PoolFailureKind, TaskFailed, TaskRequest

from .pool_helpers import (
    exits_within,
    is_running,
    open_pool,
    outputs_of,
    pool_task,
    single_output,
    task,
    write_script,
)

MIB = 1024 * 1024


async def test_fibonacci_succeeds_with_its_output_and_executor_time(package_dir: Path) -> None:
    async with open_pool(package_dir) as pool:
        outcome = await pool.slots[0].run(task("fibonacci", 10))
    assert single_output(outcome) == 55
    assert outcome.elapsed_us is not None
    assert outcome.elapsed_us > 0


async def test_an_in_task_exception_is_a_readable_failure_and_the_executor_stays(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        before = slot.statistics().executor_pid
        outcome = await slot.run(task("always_fail"))
        assert isinstance(outcome, TaskFailed)
        assert outcome.message == "in-task failure: ValueError: always_fail: intentional failure"
        assert outcome.kind == "execution"
        assert outcome.detail is not None
        assert 'raise ValueError("always_fail: intentional failure")' in outcome.detail
        assert single_output(await slot.run(task("add", 2, 3))) == 5
        assert slot.statistics().executor_pid == before


async def test_lookup_failures_keep_the_executor_kind_and_message(package_dir: Path) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        no_package = await slot.run(task("add", 1, 2, package="no_such_package"))
        no_task = await slot.run(task("no_such_task"))
    assert isinstance(no_package, TaskFailed)
    assert no_package.kind == "package_not_found"
    assert no_package.message.startswith("TDL package 'no_such_package' not found")
    assert isinstance(no_task, TaskFailed)
    assert no_task.kind == "task_not_found"
    assert no_task.message.startswith(
        "task 'no_such_task' not found in TDL package 'integration_test_tasks'"
    )


async def test_an_abort_is_a_crash_with_the_signal_and_the_next_task_runs_on_a_new_executor(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        crashed = slot.statistics().executor_pid
        assert crashed is not None
        outcome = await slot.run(task("always_abort"))
        assert outcome == TaskFailed("executor crashed: killed by SIGABRT", PoolFailureKind.CRASH)
        assert not is_running(crashed)
        assert single_output(await slot.run(task("fibonacci", 7))) == 13
        replacement = slot.statistics()
        assert replacement.executor_pid not in (None, crashed)
        assert replacement.executors_replaced == 1
    spawned = [r for r in caplog.records if r.getMessage() == "Executor spawned."]
    assert [(vars(r)["executor_id"], vars(r)["reason"]) for r in spawned] == [
        (0, "start"),
        (1, "replacement"),
    ]


async def test_a_hard_timeout_kills_the_whole_process_group_and_the_next_task_runs(
    package_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        executor = single_output(await slot.run(pool_task("executor_pid")))  # loads the package
        # The task writes the pid within milliseconds; the timeout leaves it a second.
        outcome = await slot.run(
            pool_task("spawn_grandchild_and_hang", str(pid_file), hard_timeout=1.0)
        )
        assert outcome == TaskFailed("hard timeout (1000 ms) exceeded", PoolFailureKind.TIMEOUT)
        grandchild = int(pid_file.read_text())
        assert await exits_within(grandchild, seconds=10)
        assert not is_running(executor)
        assert single_output(await slot.run(task("fibonacci", 7))) == 13


async def test_a_hard_timeout_also_kills_what_the_task_started_in_a_new_session(
    package_dir: Path, tmp_path: Path
) -> None:
    pids_path = tmp_path / "tree.pids"
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        single_output(await slot.run(task("fibonacci", 7)))  # loads the package
        # The task writes the pids within milliseconds; the timeout leaves it two seconds.
        outcome = await slot.run(
            task("spawn_process_tree", str(pids_path), "", True, hard_timeout=2.0)
        )
        assert outcome == TaskFailed("hard timeout (2000 ms) exceeded", PoolFailureKind.TIMEOUT)
        executor, child, daemon = map(int, pids_path.read_text().split())
        for pid in (executor, child, daemon):
            assert await exits_within(pid, seconds=1), pid


async def test_the_hard_timeout_also_covers_sending_the_request(
    package_dir: Path, tmp_path: Path
) -> None:
    # An executor that says Ready and then never reads: a request bigger than the pipe buffer
    # blocks in the write, which upstream's timeout did not cover.
    never_reads = write_script(
        tmp_path / "never_reads",
        """
        import os, time
        from spider.executor.protocol import PROTOCOL_VERSION, Ready, encode_response, frame
        limit = int(os.environ["SPIDER_EXECUTOR_MAX_FRAME_BYTES"])
        os.write(1, frame(encode_response(Ready(PROTOCOL_VERSION, os.getpid(), limit)), limit))
        time.sleep(1000)
        """,
    )
    async with open_pool(package_dir, bin_path=never_reads) as pool:
        stuck = pool.slots[0].statistics().executor_pid
        assert stuck is not None
        outcome = await pool.slots[0].run(task("echo_bytes", b"x" * MIB, hard_timeout=0.5))
        assert outcome == TaskFailed("hard timeout (500 ms) exceeded", PoolFailureKind.TIMEOUT)
        assert not is_running(stuck)


async def test_inputs_over_the_frame_limit_fail_with_the_size_and_the_limit(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir) as pool:
        slot = pool.slots[0]
        outcome = await slot.run(task("echo_bytes", b"x" * 9_000_000))
        assert isinstance(outcome, TaskFailed)
        assert outcome.kind == PoolFailureKind.INPUT_TOO_LARGE
        assert re.fullmatch(
            r"task input too large: 9000\d\d\d bytes over the 8388608-byte frame limit",
            outcome.message,
        )
        assert single_output(await slot.run(task("add", 1, 1))) == 2


async def test_outputs_over_the_frame_limit_fail_and_the_executor_keeps_serving(
    package_dir: Path,
) -> None:
    async with open_pool(package_dir, max_frame_bytes=64 * 1024) as pool:
        slot = pool.slots[0]
        executor = slot.statistics().executor_pid
        outcome = await slot.run(task("produce_bytes", 100_000))
        assert isinstance(outcome, TaskFailed)
        assert outcome.kind == PoolFailureKind.OUTPUT_TOO_LARGE
        assert re.fullmatch(
            r"task output too large: 100\d\d\d bytes over the 65536-byte frame limit",
            outcome.message,
        )
        assert single_output(await slot.run(task("add", 1, 1))) == 2
        assert slot.statistics().executor_pid == executor


async def test_a_commit_task_gets_the_job_outputs_in_its_context(package_dir: Path) -> None:
    def commit(outputs: list[int]) -> TaskRequest:
        serialized = encode_task_outputs([ormsgpack.packb(value) for value in outputs])
        return task("assert_outputs_sum_zero", task_id=TaskId.COMMIT, serialized_task_io=serialized)

    async with open_pool(package_dir) as pool:
        summing_to_zero = await pool.slots[0].run(commit([3, -1, -2]))
        not_summing_to_zero = await pool.slots[0].run(commit([1, 2, 3]))
    assert outputs_of(summing_to_zero) == []
    assert isinstance(not_summing_to_zero, TaskFailed)
    assert not_summing_to_zero.message == (
        "in-task failure: RuntimeError: assert_outputs_sum_zero: outputs do not sum to zero: got 6"
    )


async def test_a_cleanup_task_runs_although_storage_sends_empty_bytes(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = task("cleanup_marker", task_id=TaskId.CLEANUP, serialized_task_io=b"", job_id=77)
    async with open_pool(package_dir) as pool:
        outcome = await pool.slots[0].run(request)
    assert outputs_of(outcome) == []
    (marker,) = [r for r in caplog.records if r.getMessage().startswith("cleanup_marker:")]
    assert marker.getMessage() == "cleanup_marker: job 77 (Cleanup)"
    assert (vars(marker)["job_id"], vars(marker)["task_id"]) == (77, "Cleanup")


async def test_a_task_over_the_memory_limit_fails_with_the_limit(package_dir: Path) -> None:
    async with open_pool(package_dir, memory_limit_bytes=256 * MIB) as pool:
        slot = pool.slots[0]
        limited = slot.statistics().executor_pid
        assert single_output(await slot.run(pool_task("allocate", 16 * MIB))) == 16 * MIB
        outcome = await slot.run(pool_task("allocate", 512 * MIB))
        assert isinstance(outcome, TaskFailed)
        assert (outcome.kind, outcome.message) == (
            PoolFailureKind.MEMORY_LIMIT,
            "memory limit (256 MiB) exceeded",
        )
        # The executor is replaced after hitting the limit, and the next one is limited too.
        assert single_output(await slot.run(pool_task("executor_pid"))) != limited
        again = await slot.run(pool_task("allocate", 512 * MIB))
        assert isinstance(again, TaskFailed)
        assert again.kind == PoolFailureKind.MEMORY_LIMIT
