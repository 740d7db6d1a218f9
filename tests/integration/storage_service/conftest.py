"""Fixtures: grpcio stubs, and the storage service run in-process on each database backend."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

from spider.core.ids import ResourceGroupId
from spider.rpc import ServerConfig, serve
from spider.storage import StorageConfig, StorageState, open_storage_state
from spider.storage.config import JobCacheGcConfig, StorageRuntimeConfig, TaskInstancePoolConfig
from spider.storage.db import StorageDatabase
from spider.storage.service import storage_services

from .grpc_client import GrpcEm, StorageClient, StubModules

TEST_CONFIG = StorageConfig(
    host="127.0.0.1",
    port=0,
    runtime=StorageRuntimeConfig(
        task_instance_pool=TaskInstancePoolConfig(gc_interval_sec=60.0),
        job_cache_gc=JobCacheGcConfig(gc_interval_sec=60.0),
    ),
)


@attrs.frozen
class RunningStorage:
    """A storage service serving on loopback, its state, and a grpcio client to it."""

    state: StorageState
    client: StorageClient
    port: int

    async def add_group(self, name: str = "group", password: bytes = b"secret") -> ResourceGroupId:
        reply = await self.client.call(
            "ResourceGroupManagementService",
            "AddResourceGroup",
            external_resource_group_id=name,
            password=password,
        )
        return ResourceGroupId(reply.resource_group_id)

    async def em(self) -> GrpcEm:
        return await trio.to_thread.run_sync(GrpcEm.register, self.client)


@attrs.frozen
class StorageLauncher:
    """Starts the service on the test's database, as often as a test restarts it."""

    open_database: Callable[[], StorageDatabase]
    stubs: StubModules

    @asynccontextmanager
    async def run(
        self, config: StorageConfig = TEST_CONFIG, clock: Callable[[], float] = time.time
    ) -> AsyncIterator[RunningStorage]:
        database = self.open_database()
        async with (
            open_storage_state(config, database, clock=clock) as state,
            trio.open_nursery() as nursery,
        ):
            server_config = ServerConfig(max_request_bytes=config.runtime.limits.max_request_bytes)
            port = await nursery.start(
                functools.partial(serve, config=server_config),
                storage_services(state),
                config.host,
                config.port,
            )
            state.lifecycle.resend_ready_work()  # after serving, as the real startup does
            client = StorageClient.connect(self.stubs, port)
            try:
                yield RunningStorage(state, client, port)
            finally:
                client.close()
                nursery.cancel_scope.cancel()


@pytest.fixture
def launcher(
    storage_database_factory: Callable[[], StorageDatabase], stub_modules: StubModules
) -> StorageLauncher:
    """Runs the storage service on SQLite and on MariaDB."""
    return StorageLauncher(storage_database_factory, stub_modules)


@pytest.fixture
async def storage(launcher: StorageLauncher) -> AsyncIterator[RunningStorage]:
    """The storage service, serving."""
    async with launcher.run() as running:
        yield running
