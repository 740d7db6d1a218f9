"""``python -m spider.em`` as a real process, against the fake services, stopped by real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

from spider import rpc
from tests.processes import all_exit_within
from tests.unit.em.fakes import Watchable

from .em_harness import Cluster, Gate, fake_cluster, inputs, outputs
from .fake_services import execution_context, scheduler_assignment

BOUND = 60.0


@attrs.define(eq=False)
class EmProcess(Watchable):
    """A running ``python -m spider.em`` and the log lines it wrote on stderr."""

    process: trio.Process
    messages: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    async def read_logs(self) -> None:
        assert self.process.stderr is not None
        pending = b""
        async for chunk in self.process.stderr:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._record(line)
        if pending:
            self._record(pending)

    def _record(self, line: bytes) -> None:
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            return
        self.messages.append(str(entry.get("message", "")))
        self.notify()

    async def wait_logged(self, prefix: str) -> None:
        await self.wait_until(lambda: any(m.startswith(prefix) for m in self.messages))


def _config(
    tmp_path: Path, cluster: Cluster, package_dir: Path, grace: float, **extra: object
) -> Path:
    storage, scheduler = cluster.endpoints()
    config = {
        "storage": {"host": storage.host, "port": storage.port},
        "scheduler": {"host": scheduler.host, "port": scheduler.port},
        "liveness": {
            "storage_heartbeat_interval_sec": 0.2,
            "scheduler_heartbeat_interval_sec": 0.2,
        },
        "task_executor": {"package_dir": str(package_dir), "warm_spare": False},
        "connection_pool_size": 1,
        "scheduler_poll_wait_ms": 2000,
        "shutdown_grace_sec": grace,
        "forced_shutdown_sec": 1,
        "rpc": {"deadline_sec": 5, "next_task_margin_sec": 2, "shutdown_deadline_sec": 2},
        **extra,
    }
    path = tmp_path / "em.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@asynccontextmanager
async def em_process(config: Path) -> AsyncIterator[EmProcess]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "spider.em", "--config", str(config)],
        stderr=subprocess.PIPE,
        env={**os.environ, "SPIDER_LOG_LEVEL": "INFO"},
    )
    em = EmProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(em.read_logs)
            yield em
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5, shield=True):
                await process.wait()


async def test_sigterm_finishes_the_running_task_acknowledges_and_exits_0(
    package_dir: Path, tmp_path: Path
) -> None:
    gate = Gate.make(tmp_path)
    with trio.fail_after(BOUND):
        async with fake_cluster() as cluster:
            config = _config(tmp_path, cluster, package_dir, grace=30)
            async with em_process(config) as em:
                cluster.storage.register_replies.append(gate.context())
                cluster.scheduler.push(scheduler_assignment(1))
                await gate.wait_started()
                em.process.send_signal(signal.SIGTERM)
                await em.wait_logged("Stop requested (received SIGTERM)")
                await gate.open("finished after SIGTERM")
            assert em.process.returncode == 0
    (success,) = cluster.storage.successes
    assert outputs(success.outputs) == ["finished after SIGTERM"]
    assert cluster.scheduler.shutdowns == [[(1, 3)]]
    assert cluster.scheduler.outstanding == set()


async def test_a_second_sigterm_kills_the_task_and_exits_fast(
    package_dir: Path, tmp_path: Path
) -> None:
    gate = Gate.make(tmp_path)
    with trio.fail_after(BOUND):
        async with fake_cluster() as cluster:
            config = _config(tmp_path, cluster, package_dir, grace=300)
            async with em_process(config) as em:
                cluster.storage.register_replies.append(gate.context())
                cluster.scheduler.push(scheduler_assignment(1))
                await gate.wait_started()
                em.process.send_signal(signal.SIGTERM)
                await em.wait_logged("Stop requested (received SIGTERM)")
                forced_at = trio.current_time()
                em.process.send_signal(signal.SIGTERM)
                await em.process.wait()
                assert trio.current_time() - forced_at < 10  # not the 300 s grace
            assert em.process.returncode == 3
    (failure,) = cluster.storage.failures
    assert failure.message is not None
    assert failure.message.startswith("killed at shutdown: the execution manager was stopped")
    assert cluster.scheduler.shutdowns == [[(1, 3)]]
    assert cluster.scheduler.outstanding == set()


async def test_storage_declaring_the_em_dead_ends_it_with_status_1_and_a_clear_line(
    package_dir: Path, tmp_path: Path
) -> None:
    with trio.fail_after(BOUND):
        async with fake_cluster() as cluster:
            # Upstream's behaviour; by default the EM registers again (tests/e2e/cluster).
            config = _config(tmp_path, cluster, package_dir, grace=30, on_declared_dead="exit")
            async with em_process(config) as em:
                await cluster.scheduler.wait_until(lambda: cluster.scheduler.polling == 1)
                cluster.storage.heartbeat_error = rpc.FailedPreconditionError("already dead")
            assert em.process.returncode == 1
    assert em.messages[-1].startswith(
        "Execution manager stopped on an error: storage has declared execution manager 77 dead "
        "(already dead)"
    )
    assert cluster.scheduler.shutdowns == [[]]


async def test_sigkill_of_the_em_kills_its_executor_and_all_the_task_started_within_1_s(
    package_dir: Path, tmp_path: Path
) -> None:
    gate = Gate.make(tmp_path)
    pids_path = tmp_path / "tree.pids"
    task_io = inputs(str(pids_path), str(gate.started), True)
    with trio.fail_after(BOUND):
        async with fake_cluster() as cluster:
            config = _config(tmp_path, cluster, package_dir, grace=30)
            async with em_process(config) as em:
                cluster.storage.register_replies.append(
                    execution_context("spawn_process_tree", task_io)
                )
                cluster.scheduler.push(scheduler_assignment(1))
                await gate.wait_started()
                # The executor, a child, and a daemon in a session of its own (double fork).
                pids = [int(pid) for pid in pids_path.read_text().split()]
                assert len(set(map(os.getsid, pids))) == 2
                em.process.kill()
                assert await all_exit_within(pids, seconds=1) == []


async def test_against_a_storage_without_revocations_the_em_logs_once_and_tasks_run_to_their_end(
    package_dir: Path, tmp_path: Path
) -> None:
    # The fake storage serves what upstream Spider serves: WaitRevokedInstances is UNIMPLEMENTED.
    fallback = "Storage does not serve Spider-py's WaitRevokedInstances"
    gate = Gate.make(tmp_path)
    with trio.fail_after(BOUND):
        async with fake_cluster() as cluster:
            config = _config(tmp_path, cluster, package_dir, grace=30)
            async with em_process(config) as em:
                await em.wait_logged(fallback)
                cluster.storage.register_replies.append(gate.context())
                cluster.scheduler.push(scheduler_assignment(1))
                await gate.wait_started()
                await gate.open("ran to its end")
                await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
                em.process.send_signal(signal.SIGTERM)
            assert em.process.returncode == 0
    (success,) = cluster.storage.successes
    assert outputs(success.outputs) == ["ran to its end"]
    assert sum(message.startswith(fallback) for message in em.messages) == 1
