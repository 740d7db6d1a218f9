"""Helpers for the process-pool tests: requests, outputs, and what runs on the machine."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ormsgpack
import trio

from spider.core import (
    JobId,
    ResourceGroupId,
    TaskId,
    TaskInstanceId,
    decode_frame,
    encode_frame,
)
from spider.em.pool import (
    PoolConfig,
    ProcessPool,
    TaskOutcome,
    TaskRequest,
    TaskSucceeded,
    open_process_pool,
)

TESTS = Path(__file__).resolve().parents[2]
TEST_TASKS = "integration_test_tasks"
POOL_TASKS = "em_pool_tasks"

# Generous: these bound real subprocesses (Python start-up, imports) on a busy 2-core machine;
# a healthy run takes a small fraction of it, a hang fails instead of blocking the suite.
DEADLINE = 60.0


def build_package_dir(target: Path) -> Path:
    """A package directory holding the shared test package and this suite's own."""
    shutil.copytree(TESTS / "packages" / TEST_TASKS, target / TEST_TASKS)
    shutil.copytree(Path(__file__).parent / "packages" / POOL_TASKS, target / POOL_TASKS)
    return target


def task(
    task_func: str,
    *values: Any,
    package: str = TEST_TASKS,
    task_id: TaskId | None = None,
    serialized_task_io: bytes | None = None,
    hard_timeout: float = DEADLINE,
    job_id: int = 42,
) -> TaskRequest:
    """A request for ``package::task_func`` with ``values`` as its msgpack inputs."""
    return TaskRequest(
        job_id=JobId(job_id),
        task_id=task_id if task_id is not None else TaskId.index(0),
        task_instance_id=TaskInstanceId(1),
        resource_group_id=ResourceGroupId(7),
        package=package,
        task_func=task_func,
        serialized_task_io=(
            serialized_task_io
            if serialized_task_io is not None
            else encode_frame([ormsgpack.packb(value) for value in values])
        ),
        hard_timeout=hard_timeout,
    )


def pool_task(task_func: str, *values: Any, **options: Any) -> TaskRequest:
    """A request for a task of this suite's own package."""
    return task(task_func, *values, package=POOL_TASKS, **options)


def outputs_of(outcome: TaskOutcome) -> list[Any]:
    """The decoded outputs of a success (fails the test otherwise)."""
    assert isinstance(outcome, TaskSucceeded), outcome
    return [ormsgpack.unpackb(payload) for payload in decode_frame(outcome.outputs)]


def single_output(outcome: TaskOutcome) -> Any:
    """The one output of a success."""
    (value,) = outputs_of(outcome)
    return value


@asynccontextmanager
async def open_pool(
    package_dir: Path, *, warm_spare: bool = False, **settings: Any
) -> AsyncIterator[ProcessPool]:
    """``open_process_pool`` on the test packages, the whole use bounded by ``DEADLINE``.

    Without a warm spare unless asked: on two cores, starting spares nobody uses only slows
    the suite down.
    """
    config = PoolConfig(package_dir=package_dir, warm_spare=warm_spare, **settings)
    with trio.fail_after(DEADLINE):
        async with open_process_pool(config) as pool:
            yield pool


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has finished running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def exits_within(pid: int, seconds: float) -> bool:
    """Whether ``pid``, which is not our child, exits within ``seconds``.

    A SIGKILL sent to a process group takes effect when each member is next scheduled, so a
    process we cannot reap is waited for through a pidfd (readable once it has exited).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        with trio.move_on_after(seconds):
            await trio.lowlevel.wait_readable(pidfd)
            return True
        return not is_running(pid)
    finally:
        os.close(pidfd)


def write_script(path: Path, body: str) -> Path:
    """An executable Python script, run by this interpreter, to use as ``bin_path``."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path
