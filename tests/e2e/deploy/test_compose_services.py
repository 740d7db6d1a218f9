"""The compose deployment's Spider-py services, started as ``deploy/compose.yaml`` starts them.

Each replica of storage, the scheduler and the execution managers runs its compose command with
its compose environment and a copy of its mounted configuration, changed only where a machine
without containers must differ (``tests/deploy_files.py`` lists the substitution), in compose's
order: each must answer 200 on ``/readyz`` and pass its compose healthcheck before the next
starts, as ``condition: service_healthy`` asks. Then the word-count example runs through the
``spider`` command, as docs/deployment.md tells a user to. Once on SQLite (the storage
configuration's ``runtime.db`` swapped for a file in its data volume, as the docs describe),
once on the test MariaDB, set up as the compose database service's environment asks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from spider.cli import main as spider_cli
from spider.client import SyncClient
from tests.deploy_files import (
    DATABASE_SERVICE,
    ROOT,
    SPIDER_SERVICES,
    STORAGE_SERVICE,
    WORKER_SERVICE,
    Compose,
    HostPorts,
    LocalService,
)
from tests.e2e.cluster.service_process import ServiceProcess, spawn_command
from tests.mariadb_server import MariaDbServer
from tests.metrics_scrape import sample, scrape, wait_ready

WORDCOUNT = ROOT / "examples" / "wordcount.py"
WORDCOUNT_TASKS = 8
HEALTHCHECK_DEADLINE = 30.0
SQLITE_FILE = "/var/lib/spider/storage.db"
"""In storage's data volume (``/var/lib/spider``), where the docs' SQLite variant puts it."""
METRICS_READY_LINE = "/readyz"
"""Part of the line each service logs once its metrics server listens."""


def on_sqlite(config: dict[str, Any]) -> dict[str, Any]:
    """Storage's configuration with its database swapped for SQLite in its data volume."""
    if "runtime" not in config or "db" not in config["runtime"]:
        return config
    return {**config, "runtime": {**config["runtime"], "db": {"sqlite": SQLITE_FILE}}}


def test_the_compose_services_run_a_job_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = Compose.load()
    run_deployment(compose, tmp_path, HostPorts(), capsys, edit=on_sqlite)
    assert (tmp_path / "volumes" / "spider-storage-data" / "storage.db").is_file()


@pytest.mark.mariadb
def test_the_compose_services_run_a_job_on_mariadb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mariadb_server: MariaDbServer
) -> None:
    compose = Compose.load()
    database = compose.service(DATABASE_SERVICE)
    ports = HostPorts({(DATABASE_SERVICE, 3306): mariadb_server.port})
    with database_as_the_image_creates_it(mariadb_server, database.environment) as tables:
        run_deployment(compose, tmp_path, ports, capsys)
        assert "jobs" in tables()


@contextmanager
def database_as_the_image_creates_it(
    server: MariaDbServer, environment: dict[str, str]
) -> Iterator[Callable[[], set[str]]]:
    """What the MariaDB image does at its first start: the database ``MYSQL_DATABASE`` and the
    user ``MYSQL_USER`` (``MYSQL_PASSWORD``) with every privilege on it. Yields a function
    listing the database's tables; drops both afterwards."""
    name = environment["MYSQL_DATABASE"]
    user, password = environment["MYSQL_USER"], environment["MYSQL_PASSWORD"]
    hosts = ("127.0.0.1", "localhost")
    with server.admin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        for host in hosts:
            conn.exec_driver_sql("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@%s", (user, host))

    def tables() -> set[str]:
        with server.admin() as conn:
            rows = conn.exec_driver_sql(f"SHOW TABLES FROM `{name}`").all()
        return {row[0] for row in rows}

    try:
        yield tables
    finally:
        with server.admin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            for host in hosts:
                conn.exec_driver_sql("DROP USER IF EXISTS %s@%s", (user, host))


def run_deployment(
    compose: Compose,
    here: Path,
    ports: HostPorts,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda config: config,
) -> None:
    """Start the Spider-py services in compose's order, run a job, stop them (exit status 0)."""
    order = [name for name in compose.start_order() if name in SPIDER_SERVICES]
    assert order == list(SPIDER_SERVICES)
    started: list[tuple[LocalService, ServiceProcess]] = []
    try:
        for name in order:
            service = compose.service(name)
            for instance in service.instances():
                local = compose.localize(service, instance, here, ports, edit)
                process = spawn_command(
                    instance,
                    local.command,
                    ready_text=METRICS_READY_LINE,
                    env=local.environment,
                )
                started.append((local, process))
                become_healthy(local, process)
        check_a_job_runs(started, capsys)
        statuses = {local.instance: process.stop() for local, process in reversed(started)}
        assert set(statuses.values()) == {0}, statuses
    finally:
        for _, process in started:
            if process.process.poll() is None:
                process.kill()


def become_healthy(local: LocalService, process: ServiceProcess) -> None:
    """Wait for ``/readyz`` to answer 200, then run the compose healthcheck: it must pass."""
    process.wait_ready()  # its metrics server listens (or it exited: fail with its log)
    wait_ready(local.config()["metrics"]["port"])
    check = subprocess.run(
        local.healthcheck, capture_output=True, text=True, timeout=HEALTHCHECK_DEADLINE
    )
    assert check.returncode == 0, f"{local.instance}'s healthcheck failed: {check.stderr}"


def check_a_job_runs(
    started: list[tuple[LocalService, ServiceProcess]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The word count through the ``spider`` command, its tasks run by the compose EMs."""
    services = {local.instance: local for local, _ in started}
    storage = f"127.0.0.1:{services[STORAGE_SERVICE].config()['port']}"
    workers = [local for local in services.values() if local.instance.startswith(WORKER_SERVICE)]
    assert len(workers) == 2
    capsys.readouterr()
    status = spider_cli(["--storage", storage, "--json", "submit", str(WORDCOUNT), "--wait"])
    out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(out.splitlines()[-1])
    assert result["state"] == "Succeeded", result
    words = Counter(word.decode() for word in _wordcount_text().split())
    assert result["outputs"] == [dict(words)]
    finished = sum(
        sample(
            scrape(local.config()["metrics"]["port"]),
            "spider_em_tasks_finished_total",
            outcome="succeeded",
        )
        for local in workers
    )
    assert finished == WORDCOUNT_TASKS
    details = SyncClient(storage).cluster_status().details
    assert details is not None
    assert sum(em.alive for em in details.execution_managers) == len(workers)
    for _, process in started:
        assert process.process.poll() is None, f"{process.name} exited:\n{process.log()}"


def _wordcount_text() -> bytes:
    """The text the example counts the words of (importing it imports its TDL package)."""
    examples = str(WORDCOUNT.parent)
    sys.path.insert(0, examples)
    try:
        import wordcount
    finally:
        sys.path.remove(examples)
    text: bytes = wordcount.TEXT
    return text
