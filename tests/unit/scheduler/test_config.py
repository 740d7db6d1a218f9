"""Scheduler configuration and command line: Spider's keys, defaults, rejection by key name."""

from __future__ import annotations

from pathlib import Path

import pytest

from spider.core.config import ConfigError
from spider.core.service_cli import ServiceExit
from spider.rpc import Endpoint
from spider.scheduler import SchedulerConfig, load_scheduler_config
from spider.scheduler.cli import main

SPIDER_FILE = """\
host: 0.0.0.0
port: 50052
connection_pool_size: 8
storage_endpoint: {host: spider-storage, port: 50051}
runtime:
  advertised_endpoint: {host: spider-scheduler, port: 50052}
  stop_timeout_sec: 30
  em_registry: {dead_em_cutoff_sec: 30, liveness_tracking_interval_ms: 1000}
  scheduler:
    policy: round_robin
    config:
      active_job_queue_capacity: 16
      dispatch_queue_capacity: 16
      ready_task_capacity: 1048576
      commit_ready_task_capacity: 256
      cleanup_ready_task_capacity: 256
      storage_poll_timeout_ms: 10
      tick_interval_ms: 5
      finalizing_job_expiration_timeout_sec: 300
"""


def test_spider_deployment_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(SPIDER_FILE)

    config = load_scheduler_config(path)

    assert config.connection_pool_size == 8
    assert config.storage_endpoint.endpoint() == Endpoint("spider-storage", 50051)
    assert config.round_robin.storage_poll_timeout_ms == 10
    assert config.advertised_endpoint(1234) == Endpoint("spider-scheduler", 50052)


def test_every_key_has_a_default() -> None:
    config = load_scheduler_config(None)
    assert config == SchedulerConfig()
    assert config.advertised_endpoint(4321) == Endpoint("127.0.0.1", 4321)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("runtime: {scheduler: {policy: fifo}}", "policy"),
        ("runtime: {scheduler: {config: {tick_interval_ms: 0}}}", "tick_interval_ms"),
        ("runtime: {scheduler: {extra: 1}}", "'extra'"),
        ("portt: 1", "'portt'"),
    ],
)
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load_scheduler_config(path)


def test_the_command_line_exits_2_on_a_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text("port: -1\n")
    assert main(["--config", str(path)]) == ServiceExit.USAGE
    assert "port" in capsys.readouterr().err


def test_flags_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(SPIDER_FILE)
    status = main(
        ["--config", str(path), "--port", "0", "--storage", "10.1.2.3:7", "--print-config"]
    )
    assert status == ServiceExit.STOPPED
    printed = capsys.readouterr().out
    assert "port: 0" in printed
    assert "host: 10.1.2.3" in printed
