"""The cluster credential's check and its token file, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from spider import rpc
from spider.core.config import ConfigError
from spider.rpc.auth import (
    CLUSTER_TOKEN_HEADER,
    ClusterAuth,
    cluster_auth,
    cluster_metadata,
    read_cluster_token,
)

TOKEN = "s3cret-token"


def test_only_the_exact_token_is_accepted() -> None:
    auth = ClusterAuth(TOKEN)
    assert auth.accepts({CLUSTER_TOKEN_HEADER: TOKEN})
    for wrong in ("", "s3cret", TOKEN + " ", TOKEN.upper(), "é" + TOKEN):
        assert not auth.accepts({CLUSTER_TOKEN_HEADER: wrong}), wrong
    assert not auth.accepts({})
    assert not auth.accepts(None)
    assert not auth.accepts({"authorization": f"Bearer {TOKEN}"})


def test_every_service_but_the_open_ones_is_guarded() -> None:
    auth = ClusterAuth(
        TOKEN,
        frozenset(
            {
                "storage.JobOrchestrationService",
                "/storage.SchedulerRegistrationService/GetSchedulers",
            }
        ),
    )
    assert not auth.guards("/storage.JobOrchestrationService/RegisterJob")
    assert not auth.guards("/storage.SchedulerRegistrationService/GetSchedulers")
    assert auth.guards("/storage.SchedulerRegistrationService/RegisterScheduler")
    assert auth.guards("/storage.TaskInstanceManagementService/RegisterTaskInstance")
    assert auth.guards("/scheduler.SchedulerService/NextTask")


def test_a_refusal_is_unauthenticated_and_says_why() -> None:
    error = ClusterAuth(TOKEN).refusal("/scheduler.SchedulerService/NextTask", {}, None)
    assert error.status == rpc.Status.UNAUTHENTICATED
    assert "no cluster credential" in str(error.message)
    assert TOKEN not in str(error.message)


def test_the_token_file_is_read_once_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    security = rpc.SecurityConfig(cluster_token_file=path)
    assert read_cluster_token(path) == TOKEN
    assert cluster_metadata(security) == ((CLUSTER_TOKEN_HEADER, TOKEN),)
    auth = cluster_auth(security, ["storage.JobOrchestrationService"])
    assert auth is not None
    assert auth.accepts({CLUSTER_TOKEN_HEADER: TOKEN})
    assert cluster_metadata(rpc.SecurityConfig()) == ()
    assert cluster_auth(rpc.SecurityConfig()) is None


@pytest.mark.parametrize("content", [b"", b"\n  \n", b"two words", b"caf\xc3\xa9", b"x" * 5000])
def test_an_unusable_token_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="cluster_token_file"):
        read_cluster_token(path)


def test_a_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_cluster_token(tmp_path / "absent")
