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
from tests.mariadb_server import MariaDbServer
from tests.small_disk import small_filesystem

from .cluster import Cluster
from .driver import JobDriver

# Tasks of the fault tests take this long, so a fault lands while a job is half done.
FAULT_TASK_DELAY_MS = 60
# Storage's grace after a hard timeout in the database-outage tests: far shorter than the
# outage, so an outage counted against a task's deadline would fail it.
OUTAGE_HARD_TIMEOUT_GRACE_SEC = 2.0


def _running(
    directory: Path,
    database: DatabaseConfig,
    task_delay_ms: int,
    hard_timeout_grace_sec: float | None = None,
) -> Iterator[Cluster]:
    cluster = Cluster(directory, database, task_delay_ms, hard_timeout_grace_sec)
    yield from running_cluster(cluster)


def running_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """Start ``cluster``, yield it, then check every process is alive and stops with status 0."""
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


@pytest.fixture
def small_disk_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A SQLite cluster whose database lives on a 20 MB tmpfs that a test can fill (root)."""
    with small_filesystem(tmp_path / "disk", "20m") as disk:
        yield from _running(
            tmp_path,
            SqliteConfig(disk / "storage.db"),
            FAULT_TASK_DELAY_MS,
            OUTAGE_HARD_TIMEOUT_GRACE_SEC,
        )


@pytest.fixture
def mariadb_cluster(tmp_path: Path, mariadb_server: MariaDbServer) -> Iterator[Cluster]:
    """A cluster on a fresh database of the private MariaDB server."""
    with mariadb_server.fresh_database() as config:
        yield from _running(tmp_path, config, FAULT_TASK_DELAY_MS, OUTAGE_HARD_TIMEOUT_GRACE_SEC)


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
def small_disk_driver(
    stub_modules: StubModules, small_disk_cluster: Cluster
) -> Iterator[JobDriver]:
    yield from _driver(stub_modules, small_disk_cluster)


@pytest.fixture
def mariadb_driver(stub_modules: StubModules, mariadb_cluster: Cluster) -> Iterator[JobDriver]:
    yield from _driver(stub_modules, mariadb_cluster)


@pytest.fixture
def fault_driver(stub_modules: StubModules, fault_cluster: Cluster) -> Iterator[JobDriver]:
    yield from _driver(stub_modules, fault_cluster)
