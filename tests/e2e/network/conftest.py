"""Fixtures of the network-fault suite: a test network per test, a cluster placed in it.

The suite needs root, ``ip`` with network namespaces, and ``nft``
(``scripts/ci-install-netfaults.sh`` installs it). Without them it is skipped, except under CI
(env ``CI`` set), where that is a failure, as for the MariaDB tests (tests/conftest.py).
After the run the terminal summary prints the reliability table (docs/reliability.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spider.storage.db import SqliteConfig
from tests.e2e.cluster.cluster import Cluster, Placement
from tests.e2e.cluster.driver import JobDriver
from tests.e2e.cluster.service_process import ServiceProcess
from tests.integration.storage_service.grpc_client import StorageClient, StubModules

from .checker import OUTCOMES, table
from .netns import ROLES, Network, missing_requirement, test_network

# Slower than the SIGKILL tests' tasks, so that the jobs are still running when the fault heals.
TASK_DELAY_MS = 100


@pytest.fixture(scope="session")
def network_requirement() -> None:
    reason = missing_requirement()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the network-fault suite: {reason}")
    pytest.skip(reason)


@pytest.fixture
def network(network_requirement: None) -> Iterator[Network]:
    with test_network() as made:
        yield made


@pytest.fixture
def net_cluster(tmp_path: Path, network: Network) -> Iterator[Cluster]:
    placement = Placement(
        storage_listen=network.listen_host("storage"),
        storage_address=network.address("storage"),
        scheduler_listen=network.listen_host("scheduler"),
        scheduler_address=network.address("scheduler"),
        launchers={role: network.launcher(role) for role in ROLES},
        em_env={"SPIDER_LOG_LEVEL": "DEBUG"},  # the EMs log each acknowledged report
    )
    cluster = Cluster(
        tmp_path, SqliteConfig(tmp_path / "storage.db"), TASK_DELAY_MS, placement=placement
    )
    try:
        network.start_relay("storage", cluster.storage_port)
        network.start_relay("scheduler", cluster.scheduler_port)
        cluster.start()
        yield cluster
        statuses = cluster.stop()
        assert all(status == 0 for status in statuses.values()), statuses
    finally:
        services = [*cluster.exited, *cluster.running()]
        for service in cluster.running():
            service.kill()
        _keep_logs(tmp_path / "logs", [*services, *network.relays])


def _keep_logs(directory: Path, services: list[ServiceProcess]) -> None:
    """Every service's log in the test's directory, for a failure's post-mortem."""
    directory.mkdir(exist_ok=True)
    for number, service in enumerate(services):
        (directory / f"{number:02d}-{service.name}.log").write_text("".join(service.lines))


@pytest.fixture
def net_driver(
    stub_modules: StubModules, net_cluster: Cluster, network: Network
) -> Iterator[JobDriver]:
    client = StorageClient.connect(
        stub_modules, net_cluster.storage_port, host=network.address("storage")
    )
    try:
        yield JobDriver(client)
    finally:
        client.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if OUTCOMES:
        terminalreporter.section("network faults: reliability table (docs/reliability.md)")
        terminalreporter.write_line(table(OUTCOMES))
