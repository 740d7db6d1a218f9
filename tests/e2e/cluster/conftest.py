"""Fixtures of the cluster tests: grpcio stubs, and clusters on SQLite or MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spider.storage.db import DatabaseConfig, SqliteConfig
from tests.integration.storage_service.grpc_client import (
    StorageClient,
    StubModules,
)

from .cluster import Cluster
from .driver import JobDriver

# Tasks of the fault tests take this long, so a fault lands while a job is half done.
FAULT_TASK_DELAY_MS = 60


def _running(directory: Path, database: DatabaseConfig, task_delay_ms: int) -> Iterator[Cluster]:
    cluster = Cluster(directory, database, task_delay_ms)
    try:
        cluster.start()
        yield cluster
        cluster.check_alive()
        statuses = cluster.stop()
        assert all(status == 0 for status in statuses.values()), statuses
    finally:
        for service in cluster.running():
            service.kill()


@pytest.fixture(scope="module")
def quick_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One SQLite cluster shared by a module's tests; tasks run without delay."""
    directory = tmp_path_factory.mktemp("cluster")
    yield from _running(directory, SqliteConfig(directory / "storage.db"), 0)


@pytest.fixture
def fault_cluster(tmp_path: Path, storage_config: DatabaseConfig) -> Iterator[Cluster]:
    """A fresh cluster per test, on each backend, its tasks slowed down for fault injection."""
    yield from _running(tmp_path, storage_config, FAULT_TASK_DELAY_MS)


def _driver(stub_modules: StubModules, cluster: Cluster) -> Iterator[JobDriver]:
    client = StorageClient.connect(stub_modules, cluster.storage_port)
    try:
        yield JobDriver(client)
    finally:
        client.close()


@pytest.fixture
def quick_driver(stub_modules: StubModules, quick_cluster: Cluster) -> Iterator[JobDriver]:
    yield from _driver(stub_modules, quick_cluster)


@pytest.fixture
def fault_driver(stub_modules: StubModules, fault_cluster: Cluster) -> Iterator[JobDriver]:
    yield from _driver(stub_modules, fault_cluster)
