"""A storage and a scheduler as real processes on loopback, a health probe of both, and the
checks every hostile test ends with: no traceback at ERROR in either log, no stalled probe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest

from spider.proto.scheduler import SchedulerServiceStub
from spider.proto.storage import SessionManagementServiceStub
from spider.rpc import UnaryMethod
from spider.storage.db import SqliteConfig
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.conftest import running_cluster
from tests.e2e.cluster.service_process import ServiceProcess

from .raw_client import SCHEDULER_METHODS, HealthProbe


@attrs.frozen
class HostileTarget:
    """The processes under attack, a channel to each, and the probe watching them."""

    cluster: Cluster
    storage: grpc.Channel
    scheduler: grpc.Channel
    probe: HealthProbe

    def processes(self) -> list[ServiceProcess]:
        return self.cluster.running()

    def channel_for(self, method: UnaryMethod[Any, Any]) -> grpc.Channel:
        """The channel to the service that serves ``method``."""
        return self.scheduler if method in SCHEDULER_METHODS else self.storage


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileTarget]:
    directory: Path = tmp_path_factory.mktemp("hostile")
    cluster = Cluster(directory, SqliteConfig(directory / "storage.db"), 0, em_count=0)
    yield from under_attack(cluster)


def under_attack(cluster: Cluster) -> Iterator[HostileTarget]:
    """Start ``cluster`` (storage and scheduler), probe both while the tests attack them, and
    check at the end that every process is alive and stops cleanly."""
    for _ in running_cluster(cluster):  # one pass; the rest checks a clean stop
        probe = HealthProbe(
            {
                "storage": (SessionManagementServiceStub.get_session.route, cluster.storage_port),
                "scheduler": (SchedulerServiceStub.heartbeat.route, cluster.scheduler_port),
            }
        )
        probe.start()
        with (
            grpc.insecure_channel(f"127.0.0.1:{cluster.storage_port}") as storage,
            grpc.insecure_channel(f"127.0.0.1:{cluster.scheduler_port}") as scheduler,
        ):
            try:
                yield HostileTarget(cluster, storage, scheduler, probe)
            finally:
                probe.stop()


@pytest.fixture(autouse=True)
def _services_stay_healthy(target: HostileTarget) -> Iterator[None]:
    """After each test: every service answered every probe within a second, and logged no
    traceback at ERROR."""
    seen = {service.name: len(service.lines) for service in target.processes()}
    stalls = len(target.probe.stalls)
    yield
    assert target.probe.stalls[stalls:] == [], "a service stopped answering its health probe"
    for service in target.processes():
        tracebacks = [
            line for line in service.lines[seen[service.name] :] if _is_error_with_traceback(line)
        ]
        assert tracebacks == [], f"{service.name} logged a traceback at ERROR:\n{tracebacks[:3]}"
    target.cluster.check_alive()


def _is_error_with_traceback(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(entry, dict)
        and entry.get("level") in ("ERROR", "CRITICAL")
        and "exception" in entry
    )
