"""``python -m spider.storage``: help, configuration errors, fatal errors and clean stops."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from spider.storage.db import DatabaseCredentials, MariaDbConfig
from tests.mariadb_server import free_tcp_port

from .storage_process import running_storage, write_config


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spider.storage", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_describes_the_options(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)

    assert result.returncode == 0
    for option in ("--config", "--host", "--port", "--data-dir", "--human-logs"):
        assert option in result.stdout


def test_a_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, None, runtime={"inbound_queue": {"task_capacty": 5}})

    result = run_cli("--config", config, cwd=tmp_path)

    assert result.returncode == 2
    assert "task_capacty" in result.stderr


def test_an_unreachable_database_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    nothing_listens = MariaDbConfig(
        host="127.0.0.1",
        port=free_tcp_port(),
        name="spider",
        credentials=DatabaseCredentials("spider", "secret"),
    )
    config = write_config(tmp_path, nothing_listens)

    result = run_cli("--config", config, cwd=tmp_path)

    assert result.returncode == 1
    assert "unavailable" in result.stderr
    assert "storage listening" not in result.stderr


def test_without_a_database_it_uses_sqlite_in_the_data_dir_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    with running_storage("--port", "0", "--data-dir", "state", cwd=tmp_path) as storage:
        status = storage.stop(signal.SIGINT)

    assert status == 0
    assert (tmp_path / "state" / "storage.db").is_file()
    messages = [record["message"] for record in storage.records()]
    assert f"storage listening on 127.0.0.1:{storage.port} (session 1)" in messages
    assert messages[-1] == "storage stopped"


def test_a_port_in_use_exits_1(tmp_path: Path) -> None:
    with running_storage("--port", "0", "--data-dir", "first", cwd=tmp_path) as first:
        result = run_cli("--port", str(first.port), "--data-dir", "second", cwd=tmp_path)
        assert first.stop() == 0

    assert result.returncode == 1
    assert str(first.port) in result.stderr
    assert "storage listening" not in result.stderr
