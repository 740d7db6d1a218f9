"""The hostile suite's target with authentication on: storage and the scheduler require the
cluster credential of EMs and schedulers, and storage requires resource-group credentials on job
calls. The parent conftest's checks (no traceback at ERROR, no stalled probe) apply unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spider.storage.db import SqliteConfig
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.hostile.conftest import HostileTarget, under_attack

CLUSTER_TOKEN = "hostile-5b0e6c1f9a2d48e7b3c4d5e6f7a8b9c0"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileTarget]:
    directory = tmp_path_factory.mktemp("hostile-secured")
    token = directory / "cluster-token"
    token.write_text(CLUSTER_TOKEN + "\n")
    security = {"cluster_token_file": str(token), "require_group_credentials": True}
    cluster = Cluster(
        directory, SqliteConfig(directory / "storage.db"), 0, em_count=0, security=security
    )
    yield from under_attack(cluster)
