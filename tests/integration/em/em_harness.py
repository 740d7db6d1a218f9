"""Runs the EM runtime over real gRPC against the fake services, with real executors."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import ormsgpack
import trio

from spider.core import decode_frame, encode_frame
from spider.core.backoff import Backoff
from spider.em._retry import RetryPolicy
from spider.em.clients import ClientDeadlines, open_grpc_clients
from spider.em.errors import ExecutionManagerError
from spider.em.pool import PoolConfig, open_process_pool
from spider.em.runtime import RuntimeSettings, run_execution_manager
from spider.em.stop import EmStop
from spider.proto import storage as storage_pb
from spider.rpc import Endpoint, ServiceBase

from .fake_services import (
    LOOPBACK,
    FakeDispatchService,
    FakeLivenessService,
    FakeSchedulerService,
    FakeTaskInstanceBatchService,
    FakeTaskInstanceService,
    RestartableServer,
    SchedulerState,
    StorageState,
    execution_context,
)

TESTS = Path(__file__).resolve().parents[2]
TEST_TASKS = "integration_test_tasks"
EM_TASKS = "em_runtime_tasks"

DEADLINE = 60.0
"""Bounds every test: real subprocesses and sockets on a busy 2-core machine."""

FAST_RETRY = RetryPolicy(backoff=Backoff(initial=0.05, cap=0.5, multiplier=2.0, jitter=0.01))

SETTINGS = RuntimeSettings(
    scheduler_poll_wait_ms=2000,
    storage_heartbeat_interval=0.1,
    scheduler_heartbeat_interval=0.1,
    shutdown_drain=5.0,
    shutdown_rpc_bound=5.0,
    retry=FAST_RETRY,
)

DEADLINES = ClientDeadlines(call=5.0, next_task_margin=2.0, shutdown=2.0)


def build_package_dir(target: Path) -> Path:
    """The shared test package and this suite's own, in one package directory."""
    shutil.copytree(TESTS / "packages" / TEST_TASKS, target / TEST_TASKS)
    shutil.copytree(Path(__file__).parent / "packages" / EM_TASKS, target / EM_TASKS)
    return target


def inputs(*values: Any) -> bytes:
    """A task's input wire frame."""
    return encode_frame([ormsgpack.packb(value) for value in values])


def outputs(frame: bytes | None) -> list[Any]:
    """A task's decoded outputs."""
    assert frame is not None
    return [ormsgpack.unpackb(payload) for payload in decode_frame(frame)]


@attrs.define(eq=False)
class Cluster:
    """The fake scheduler and storage, each on its own restartable server."""

    scheduler: SchedulerState
    storage: StorageState
    scheduler_server: RestartableServer
    storage_server: RestartableServer

    async def restart_storage(self, *, new_session: bool) -> None:
        """Stop storage's server (in-flight calls fail) and serve again on the same port."""
        await self.storage_server.stop()
        if new_session:
            self.storage.session += 1
        await self.storage_server.start()

    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        return (
            Endpoint(LOOPBACK, self.storage_server.port),
            Endpoint(LOOPBACK, self.scheduler_server.port),
        )


SERVE_EXTENSION = True
"""Whether ``fake_cluster`` serves Spider-py's execution extension; the directory's conftest runs
every test both ways (patching this)."""


@asynccontextmanager
async def fake_cluster() -> AsyncIterator[Cluster]:
    """The RPC bridge and both fake services for the block."""
    async with trio.open_nursery() as nursery:
        scheduler, storage = SchedulerState(), StorageState()
        task_instances = FakeTaskInstanceService(storage)
        scheduler_services: list[ServiceBase] = [FakeSchedulerService(scheduler)]
        storage_services: list[ServiceBase] = [FakeLivenessService(storage), task_instances]
        if SERVE_EXTENSION:
            scheduler_services.append(FakeDispatchService(scheduler))
            storage_services.append(FakeTaskInstanceBatchService(task_instances))
        cluster = Cluster(
            scheduler,
            storage,
            RestartableServer(scheduler_services, nursery),
            RestartableServer(storage_services, nursery),
        )
        await cluster.scheduler_server.start()
        await cluster.storage_server.start()
        yield cluster
        nursery.cancel_scope.cancel(reason="the test is over")


@attrs.define(eq=False)
class RunningEm:
    """One run of ``run_execution_manager``: its stop and how it ended."""

    em_stop: EmStop
    done: trio.Event = attrs.field(factory=trio.Event)
    error: ExecutionManagerError | None = None
    stopped_at: float | None = None

    async def stop(self) -> None:
        """What SIGTERM does: request a stop; then wait for the runtime to return."""
        self.em_stop.request("SIGTERM (test)")
        await self.done.wait()


@asynccontextmanager
async def running_em(
    cluster: Cluster,
    package_dir: Path,
    *,
    settings: RuntimeSettings = SETTINGS,
    grace: float = 10.0,
    forced_bound: float = 2.0,
    **pool_settings: Any,
) -> AsyncIterator[RunningEm]:
    """Run an EM for the block (the whole test bounded by ``DEADLINE``); leaving the block
    requests a stop unless one was, and waits for the runtime to return."""
    pool_settings.setdefault("warm_spare", False)
    pool = PoolConfig(package_dir=package_dir, **pool_settings)
    em = RunningEm(EmStop(grace=grace, forced_bound=forced_bound))
    storage, scheduler = cluster.endpoints()

    async def run() -> None:
        try:
            async with open_grpc_clients(storage, scheduler, deadlines=DEADLINES) as clients:
                await run_execution_manager(
                    settings, clients, functools.partial(open_process_pool, pool), em.em_stop
                )
        except ExecutionManagerError as error:
            em.error = error
        finally:
            em.stopped_at = trio.current_time()
            em.done.set()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            yield em
            if not em.em_stop.requested:
                em.em_stop.request("the test is over")
            await em.done.wait()


@attrs.define
class Gate:
    """Two FIFOs for ``em_runtime_tasks.wait_for_release``: the task says it started through
    one and waits for the test to release it through the other."""

    started: Path
    release: Path

    @classmethod
    def make(cls, directory: Path) -> Gate:
        gate = cls(directory / "started.fifo", directory / "release.fifo")
        os.mkfifo(gate.started)
        os.mkfifo(gate.release)
        return gate

    def context(self, instance: int = 1) -> storage_pb.ExecutionContext:
        task_io = inputs(str(self.started), str(self.release))
        return execution_context("wait_for_release", task_io, package=EM_TASKS, instance=instance)

    async def wait_started(self) -> None:
        # Opening a FIFO blocks until the other end opens too.
        await trio.to_thread.run_sync(self.started.read_bytes, abandon_on_cancel=True)

    async def open(self, text: str = "released") -> None:
        await trio.to_thread.run_sync(self.release.write_text, text, abandon_on_cancel=True)
