"""The real storage service (SQLite) and the real scheduler, in-process, over loopback gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from spider.rpc import ServiceBase, serve
from spider.scheduler import (
    EndpointConfig,
    ReconnectConfig,
    RoundRobinConfig,
    SchedulerConfig,
    SchedulerRuntimeConfig,
    run_scheduler,
)
from spider.scheduler.config import PolicyConfig
from spider.storage import StorageConfig, StorageState, open_storage_state
from spider.storage.config import JobCacheGcConfig, StorageRuntimeConfig, TaskInstancePoolConfig
from spider.storage.db import SqliteConfig, open_database
from spider.storage.service import storage_services


def storage_config(port: int = 0) -> StorageConfig:
    return StorageConfig(
        host="127.0.0.1",
        port=port,
        runtime=StorageRuntimeConfig(
            task_instance_pool=TaskInstancePoolConfig(gc_interval_sec=60.0),
            job_cache_gc=JobCacheGcConfig(gc_interval_sec=60.0),
        ),
    )


def scheduler_config(
    storage_port: int, page_size: int = 512, call_deadline: float = 10.0
) -> SchedulerConfig:
    """Host 127.0.0.1, any free port, fast reconnects, lane polls of ``page_size`` entries,
    each call to storage allowed ``call_deadline`` seconds beyond its wait."""
    return SchedulerConfig(
        host="127.0.0.1",
        port=0,
        storage_endpoint=EndpointConfig("127.0.0.1", storage_port),
        runtime=SchedulerRuntimeConfig(
            scheduler=PolicyConfig(
                config=RoundRobinConfig(
                    storage_poll_timeout_ms=500, storage_poll_page_size=page_size
                )
            ),
            storage_reconnect=ReconnectConfig(initial_sec=0.05, cap_sec=0.5, jitter_sec=0.05),
            storage_call_deadline_sec=call_deadline,
        ),
    )


@attrs.frozen
class StorageProcess:
    """Runs the storage service on one SQLite file, as often as a test restarts it."""

    path: Path

    @asynccontextmanager
    async def run(
        self,
        port: int = 0,
        services: Callable[[StorageState], Sequence[ServiceBase]] = storage_services,
    ) -> AsyncIterator[int]:
        """Serve ``services(state)`` until the block ends; yields the port."""
        database = open_database(SqliteConfig(self.path), environ={})
        config = storage_config(port)
        try:
            async with (
                open_storage_state(config, database) as state,
                trio.open_nursery() as nursery,
            ):
                bound: int = await nursery.start(serve, services(state), config.host, config.port)
                state.lifecycle.resend_ready_work()
                yield bound
                nursery.cancel_scope.cancel()
        finally:
            database.close()


@asynccontextmanager
async def running_scheduler(
    storage_port: int, page_size: int = 512, call_deadline: float = 10.0
) -> AsyncIterator[int]:
    """The scheduler, serving; yields its port."""
    config = scheduler_config(storage_port, page_size, call_deadline)
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(run_scheduler, config)
        yield port
        nursery.cancel_scope.cancel()
