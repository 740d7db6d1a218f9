"""CancelJob on the multi-process cluster (storage, scheduler and one EM, each its own process,
over gRPC on loopback): the running task's executor dies within a second, and the EM's one slot
runs the next job's task."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from spider.storage.db import SqliteConfig
from tests.e2e.cancel_jobs import PACKAGE, PACKAGES, check_cancel_kills_the_running_task
from tests.integration.storage_service.grpc_client import StorageClient, StubModules

from .cluster import Cluster
from .conftest import running_cluster


@pytest.fixture
def one_em_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """One EM with one slot, so the next job's task must run where the cancelled one died."""
    package_dir = tmp_path / "packages"
    shutil.copytree(PACKAGES / PACKAGE, package_dir / PACKAGE)
    cluster = Cluster(
        tmp_path, SqliteConfig(tmp_path / "storage.db"), 0, package_dir=package_dir, em_count=1
    )
    yield from running_cluster(cluster)


def test_cancel_kills_the_running_task_and_the_slot_runs_the_next_job(
    one_em_cluster: Cluster, stub_modules: StubModules, tmp_path: Path
) -> None:
    client = StorageClient.connect(stub_modules, one_em_cluster.storage_port)
    try:
        check_cancel_kills_the_running_task(client, tmp_path / "task.pid")
    finally:
        client.close()
    one_em_cluster.check_alive()
