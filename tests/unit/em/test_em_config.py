"""The EM's configuration file, environment and flags, and the command line's early exits."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spider.core.config import ConfigError
from spider.em.config import LogFormat, load_em_config
from spider.em.life import OnDeclaredDead
from spider.em.main import EmExit, main

UPSTREAM_WORKER_YAML = """
storage:
  host: spider-storage
  port: 50051
scheduler:
  host: spider-scheduler
  port: 50052
liveness:
  storage_heartbeat_interval_sec: 1
  scheduler_heartbeat_interval_sec: 1
task_executor:
  bin_path: /usr/local/bin/spider-task-executor
  package_dir: /opt/spider/packages
  max_log_line_bytes: 65536
  inherited_env: []
connection_pool_size: 4
scheduler_poll_wait_ms: 1000
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; put back pytest's handlers afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "em.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_upstream_config_files_load_unchanged(tmp_path: Path) -> None:
    config = load_em_config(_write(tmp_path, UPSTREAM_WORKER_YAML), environ={})
    assert config.storage is not None
    assert config.scheduler is not None
    assert str(config.storage.endpoint()) == "spider-storage:50051"
    assert str(config.scheduler.endpoint()) == "spider-scheduler:50052"
    pool = config.pool_config()
    assert pool.bin_path == Path("/usr/local/bin/spider-task-executor")
    assert pool.package_dir == (Path("/opt/spider/packages"),)
    assert (pool.executors, pool.max_log_line_bytes, pool.warm_spare) == (1, 65536, True)
    settings = config.runtime_settings()
    assert settings.scheduler_poll_wait_ms == 1000
    assert settings.storage_heartbeat_interval == 1.0
    assert settings.on_declared_dead is OnDeclaredDead.REJOIN
    assert config.client_deadlines().next_task_margin == 5.0


def test_spider_py_additions_and_fractional_durations(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        task_executor: {package_dir: /p, memory_limit_mb: 256, recycle_after_tasks: 10,
                        max_frame_bytes: 1048576, warm_spare: false}
        liveness: {storage_heartbeat_interval_sec: 0.25}
        executors: 3
        shutdown_grace_sec: 2.5
        rpc: {deadline_sec: 0.5, retry: {initial_sec: 0.05, cap_sec: 1, jitter_sec: 0}}
        log_format: human
        on_declared_dead: exit
        max_pending_reports: 16
        report_senders: 2
        execution_extension: {enabled: false, max_tasks_per_poll: 8, prefetch_per_slot: 0,
                              max_report_batch: 5, revocation_poll_wait_ms: 2500}
        """,
    )
    config = load_em_config(path, environ={})
    runtime = config.runtime_settings()
    assert (runtime.max_pending_reports, runtime.report_senders) == (16, 2)
    extension = runtime.extension
    assert (extension.enabled, extension.max_tasks_per_poll) == (False, 8)
    assert (extension.prefetch_per_slot, extension.max_report_batch) == (0, 5)
    assert extension.revocation_poll_wait_ms == 2500
    pool = config.pool_config()
    assert (pool.executors, pool.memory_limit_bytes, pool.recycle_after_tasks) == (
        3,
        256 * 1024 * 1024,
        10,
    )
    assert (pool.max_frame_bytes, pool.warm_spare) == (1048576, False)
    assert config.runtime_settings().storage_heartbeat_interval == 0.25
    assert config.shutdown_grace_sec == 2.5
    assert config.client_deadlines().call == 0.5
    backoff = config.runtime_settings().retry.backoff
    assert (backoff.initial, backoff.cap, backoff.jitter) == (0.05, 1.0, 0.0)
    assert config.log_format is LogFormat.HUMAN
    assert runtime.on_declared_dead is OnDeclaredDead.EXIT


def test_environment_and_flags_override_the_file_in_that_order(tmp_path: Path) -> None:
    path = _write(tmp_path, UPSTREAM_WORKER_YAML)
    environ = {
        "SPIDER_EM_STORAGE": "10.0.0.1:1",
        "SPIDER_EM_EXECUTORS": "2",
        "SPIDER_EM_SHUTDOWN_GRACE_SEC": "7.5",
        "UNRELATED": "x",
    }
    config = load_em_config(path, environ=environ, overrides={"executors": 4})
    assert config.storage is not None
    assert (config.storage.host, config.storage.port) == ("10.0.0.1", 1)
    assert config.executors == 4
    assert config.shutdown_grace_sec == 7.5


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("task_executor: {package_dir: /p}\nhost: 0.0.0.0\n", {}, "unknown key(s) 'host'"),
        (
            "task_executor: {package_dir: /p, log_dir: /x}\n",
            {},
            "task_executor: unknown key(s) 'log_dir'",
        ),
        ("storage: {host: h, port: 1}\n", {}, "task_executor: required key is missing"),
        (
            "task_executor: {package_dir: /p}\nexecutors: 0\n",
            {},
            "executors must be an integer >= 1",
        ),
        (
            "task_executor: {package_dir: /p}\nshutdown_grace_sec: -1\n",
            {},
            "shutdown_grace_sec must be >= 0",
        ),
        (
            "task_executor: {package_dir: /p}\nstorage: {host: h, port: 0}\n",
            {},
            "port must be an integer from 1",
        ),
        (
            "task_executor: {package_dir: /p}\n",
            {"SPIDER_EM_STORAGE": "nocolon"},
            "not of the form host:port",
        ),
        (
            "task_executor: {package_dir: /p}\n",
            {"SPIDER_EM_EXECUTOR": "2"},
            "unknown environment variable SPIDER_EM_EXECUTOR",
        ),
        (
            "task_executor: {package_dir: /p}\nexecution_extension: {max_tasks_per_poll: 0}\n",
            {},
            "max_tasks_per_poll must be an integer >= 1",
        ),
        (
            "task_executor: {package_dir: /p}\nmax_pending_reports: 0\n",
            {},
            "max_pending_reports must be an integer >= 1",
        ),
        (
            "task_executor: {package_dir: /p}\non_declared_dead: restart\n",
            {},
            "on_declared_dead: invalid value",
        ),
        ("- a list\n", {}, "expected a mapping"),
        ("a: [unclosed\n", {}, "not valid YAML"),
    ],
)
def test_bad_configuration_is_rejected_by_name(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_em_config(_write(tmp_path, text), environ=environ)
    assert message in str(caught.value)


def test_the_command_line_rejects_bad_configuration_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "task_executor: {package_dir: /p}\nbogus: 1\n")
    assert main(["--config", str(path)], environ={}) == EmExit.USAGE
    assert "unknown key(s) 'bogus'" in capsys.readouterr().err


def test_one_endpoint_without_the_other_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["--package-dir", "/p", "--storage", "h:1"], environ={})
    assert status == EmExit.USAGE
    assert "give both the storage and the scheduler endpoints" in capsys.readouterr().err


def test_without_endpoints_the_em_alone_refuses_and_names_the_embedded_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # spider.em.main does not know the embedded cluster; python -m spider.em passes it in.
    assert main(["--package-dir", "/p"], environ={}) == EmExit.USAGE
    assert "python -m spider.em runs the embedded cluster" in capsys.readouterr().err


def test_print_config_shows_flags_over_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, UPSTREAM_WORKER_YAML)
    argv = ["-c", str(path), "--scheduler", "s:9", "--package-dir", "/q", "--executors", "2"]
    assert main([*argv, "--shutdown-grace", "3", "--print-config"], environ={}) == 0
    out = capsys.readouterr().out
    assert "host: s\n  port: 9" in out
    assert "package_dir:\n  - /q\n" in out
    assert "executors: 2" in out
    assert "shutdown_grace_sec: 3.0" in out


def test_the_embedded_cluster_s_address_ports_and_metrics_from_env_and_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {
        "SPIDER_EM_HOST": "0.0.0.0",
        "SPIDER_EM_STORAGE_PORT": "6001",
        "SPIDER_EM_SCHEDULER_PORT": "6002",
        "SPIDER_EM_METRICS_PORT": "6003",
        "SPIDER_EM_ADVERTISED_HOST": "10.1.2.3",
    }
    config = load_em_config(None, environ={**environ, "SPIDER_EM_PACKAGE_DIR": "/p"})
    embedded = config.embedded
    assert (embedded.host, embedded.storage_port, embedded.scheduler_port) == (
        "0.0.0.0",
        6001,
        6002,
    )
    assert config.metrics is not None
    assert config.metrics.port == 6003
    assert config.advertised_host == "10.1.2.3"
    flags = ["--host", "127.0.0.2", "--storage-port", "7001", "--scheduler-port", "7002"]
    flags += ["--metrics-port", "0", "--package-dir", "/p", "--print-config"]
    assert main(flags, environ) == EmExit.STOPPED
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["embedded"]["host"] == "127.0.0.2"
    assert (printed["embedded"]["storage_port"], printed["embedded"]["scheduler_port"]) == (
        7001,
        7002,
    )
    assert printed["metrics"]["port"] == 0
    with pytest.raises(ConfigError, match="SPIDER_EM_STORAGE_PORT: 'x' is not an integer"):
        load_em_config(None, environ={"SPIDER_EM_STORAGE_PORT": "x"})


def test_an_advertised_host_that_does_not_resolve_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["--package-dir", "/p", "--advertised-host", "no-such-host.invalid"], {})
    assert status == EmExit.USAGE
    assert "advertised_host: 'no-such-host.invalid'" in capsys.readouterr().err
