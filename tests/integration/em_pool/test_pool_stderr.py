"""Executors' stderr through a real pool: attribution, caps, invalid UTF-8, escaped writers."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from .pool_helpers import DEADLINE, exits_within, open_pool, pool_task, single_output, task

EXECUTOR_LOGGER = "spider.em.executor"


def forwarded(caplog: pytest.LogCaptureFixture, job_id: int) -> list[logging.LogRecord]:
    """The stderr lines forwarded while job ``job_id`` ran (not the forwarder's warnings)."""
    return [
        record
        for record in caplog.records
        if record.name == EXECUTOR_LOGGER
        and record.levelno == logging.INFO
        and vars(record).get("job_id") == job_id
    ]


def warnings_with(caplog: pytest.LogCaptureFixture, field: str) -> list[Any]:
    return [
        vars(record)[field]
        for record in caplog.records
        if record.name == EXECUTOR_LOGGER
        and field in vars(record)
        and record.levelno == logging.WARNING
    ]


async def test_task_output_is_attributed_replaced_truncated_and_counted(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(package_dir, max_log_line_bytes=1000) as pool:
        slot = pool.slots[0]
        executor_id = slot.statistics().executor_id
        # Three lines of 100 000 invalid bytes each, then short valid ones, then a task.
        assert single_output(await slot.run(task("write_stderr", 3, 100_000, True, job_id=1))) == (
            3 * 100_001
        )
        assert single_output(await slot.run(task("write_stderr", 2, 5, False, job_id=2))) == 12
        assert single_output(await slot.run(task("add", 1, 2, job_id=3))) == 3
    long_lines = forwarded(caplog, 1)
    assert len(long_lines) == 3
    for record in long_lines:
        assert record.getMessage() == "\ufffd" * 1000
        assert vars(record)["truncated_bytes"] == 99_000
        assert (vars(record)["executor_id"], vars(record)["slot"]) == (executor_id, 0)
        assert (vars(record)["task_id"], vars(record)["task_instance_id"]) == ("Index(0)", 1)
    assert sum(warnings_with(caplog, "lines_truncated")) == 3
    assert [record.getMessage() for record in forwarded(caplog, 2)] == ["xxxxx", "xxxxx"]
    assert forwarded(caplog, 3) == []


async def test_a_flood_of_lines_is_capped_with_a_count_and_the_pipe_keeps_draining(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(package_dir, log_lines_per_second=0.01, log_burst_lines=10) as pool:
        slot = pool.slots[0]
        # 50 000 lines (550 kB) would block the task on a full pipe if nobody read it.
        assert single_output(await slot.run(task("write_stderr", 50_000, 10, False, job_id=1)))
        assert single_output(await slot.run(task("add", 2, 2))) == 4
    lines = forwarded(caplog, 1)
    # The burst went out (the executor's start-up line took a token), then the cap held.
    assert 1 <= len(lines) <= 10
    assert {record.getMessage() for record in lines} == {"x" * 10}
    assert len(lines) + sum(warnings_with(caplog, "lines_dropped")) >= 50_000


async def test_executor_json_logs_are_nested_and_keep_their_level(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(package_dir) as pool:
        pid = pool.slots[0].statistics().executor_pid
    starts = [
        r
        for r in caplog.records
        if r.name == EXECUTOR_LOGGER and r.getMessage() == "Executor starts."
    ]
    (start,) = starts
    assert start.levelno == logging.INFO
    assert vars(start)["executor"]["pid"] == pid
    assert vars(start)["executor"]["logger"] == "spider.executor"
    exits = [r for r in caplog.records if r.getMessage() == "Executor exits."]
    assert [vars(r)["executor"]["exit_code"] for r in exits] == [0]


async def test_a_process_holding_stderr_open_does_not_hold_up_closing(
    package_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a task starts, even in a new session, dies with its executor
    # (docs/operations.md#orphaned-work): only a process outside the executor's tree that got
    # hold of its stderr can keep it open now, here this test, through /proc.
    with contextlib.ExitStack() as holding, trio.fail_after(DEADLINE):
        async with open_pool(package_dir, stderr_drain_grace=0.2) as pool:
            escaped = single_output(await pool.slots[0].run(pool_task("spawn_escaped_grandchild")))
            executor = pool.slots[0].statistics().executor_pid
            # Opening the write end of a pipe that has a reader does not block.
            holding.enter_context(open(f"/proc/{executor}/fd/2", "wb"))  # noqa: ASYNC230
        assert await exits_within(escaped, seconds=1)
        stopped = [
            r
            for r in caplog.records
            if r.getMessage().startswith("Stopped forwarding executor stderr")
        ]
        assert len(stopped) == 1
