"""The network faults the suite injects, each held for a while and then healed.

The long partitions last longer than storage's dead-EM cutoff (4 s) and the RPC deadlines (5 s,
tests/e2e/cluster/cluster.py): an EM cut off from storage is declared dead, and calls in flight
when the partition began time out. The brief ones heal before either.
"""

from __future__ import annotations

from typing import Any

import pytest

from .checker import Scenario
from .netns import LATENCY_MS, Network

LOSS_PERCENT = 10
PARTITION_SEC = 8.0
BRIEF_PARTITION_SEC = 2.0
DEGRADED_SEC = 10.0


def _latency(network: Network) -> None:
    network.latency()


def _loss(network: Network) -> None:
    network.loss(LOSS_PERCENT)


def _em_from_storage(network: Network) -> None:
    network.partition("em-0", ["storage"])


def _scheduler_from_storage(network: Network) -> None:
    network.partition("scheduler", ["storage"])


def _em_isolated(network: Network) -> None:
    network.isolate("em-0")


def _scenario(scenario: Scenario) -> Any:
    return pytest.param(scenario, id=scenario.name)


SCENARIOS = [
    _scenario(Scenario("latency", _latency, DEGRADED_SEC, f"{LATENCY_MS} ms more each way")),
    _scenario(Scenario("loss", _loss, DEGRADED_SEC, f"{LOSS_PERCENT}% of the packets dropped")),
    _scenario(
        Scenario(
            "em-storage-partition-brief",
            _em_from_storage,
            BRIEF_PARTITION_SEC,
            "an EM cut off from storage, not from the scheduler",
        )
    ),
    _scenario(
        Scenario(
            "em-storage-partition",
            _em_from_storage,
            PARTITION_SEC,
            "an EM cut off from storage, not from the scheduler",
        )
    ),
    _scenario(
        Scenario(
            "scheduler-storage-partition-brief",
            _scheduler_from_storage,
            BRIEF_PARTITION_SEC,
            "the scheduler cut off from storage",
        )
    ),
    _scenario(
        Scenario(
            "scheduler-storage-partition",
            _scheduler_from_storage,
            PARTITION_SEC,
            "the scheduler cut off from storage",
        )
    ),
    _scenario(Scenario("em-isolated", _em_isolated, PARTITION_SEC, "an EM cut off from all")),
]
