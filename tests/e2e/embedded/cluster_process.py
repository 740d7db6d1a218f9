"""``python -m spider.em`` run as the embedded cluster in a subprocess, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
STARTUP_TIMEOUT = 30.0


@attrs.frozen
class EmbeddedProcess:
    process: subprocess.Popen[str]
    storage_port: int
    data_dir: Path
    metrics_port: int | None
    """Where ``/metrics`` is served, if the banner says so."""
    dashboard_url: str | None
    """Where the dashboard is served, if the banner says so."""


@contextmanager
def embedded_cluster(
    tmp_path: Path,
    package_dir: Path | Sequence[Path] = PACKAGES,
    *,
    executor_env: Mapping[str, str] | None = None,
    extra_yaml: str = "",
) -> Iterator[EmbeddedProcess]:
    """Start the cluster on free ports; stop it with SIGTERM and check it exits 0.

    ``package_dir`` is one directory or several (written to the file as a list).
    ``executor_env`` is set in the cluster's environment and passed on to its executors;
    ``extra_yaml`` is appended to its configuration file (e.g. a ``security`` block).
    """
    data_dir = tmp_path / "data"
    config = tmp_path / "em.yaml"
    inherited = list(executor_env or {})
    directories = (
        str(package_dir)
        if isinstance(package_dir, Path)
        else json.dumps([str(directory) for directory in package_dir])
    )
    config.write_text(
        f"task_executor: {{package_dir: {directories}, inherited_env: {inherited}}}\n"
        f"embedded: {{data_dir: {data_dir}, storage_port: 0, scheduler_port: 0}}\n"
        "scheduler_poll_wait_ms: 200\n" + extra_yaml
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "spider.em", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(executor_env or {})},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # blocks until the cluster serves, or EOF
        assert banner.startswith("Spider-py embedded cluster: storage at 127.0.0.1:"), banner
        storage_port = int(banner.split("storage at 127.0.0.1:")[1].split(",")[0])
        metrics = banner.partition("metrics at http://127.0.0.1:")[2]
        metrics_port = int(metrics.split("/")[0]) if metrics else None
        dashboard = banner.partition("dashboard at ")[2].split(",")[0] or None
        yield EmbeddedProcess(process, storage_port, data_dir, metrics_port, dashboard)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STARTUP_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def spider_json(port: int, *args: str) -> tuple[int, dict[str, Any]]:
    """``spider --json ARGS`` against the storage on ``port``: its exit status and document
    (from stdout, or stderr for a failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "spider.cli", "--storage", f"127.0.0.1:{port}", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    document: dict[str, Any] = json.loads(result.stdout or result.stderr)
    return result.returncode, document
