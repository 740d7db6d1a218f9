"""Network faults while jobs run, each service in its own network namespace: latency, packet
loss, and partitions (an EM from storage, the scheduler from storage, an EM from everything),
each healed after a while. tests/e2e/network/checker.py says what must hold after each."""

from __future__ import annotations

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.driver import JobDriver

from .checker import Scenario, run_scenario
from .netns import Network
from .scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_jobs_survive_the_fault(
    scenario: Scenario, net_cluster: Cluster, net_driver: JobDriver, network: Network
) -> None:
    run_scenario(net_cluster, network, net_driver, scenario)
