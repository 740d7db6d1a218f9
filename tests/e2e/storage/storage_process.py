"""``python -m spider.storage`` as a subprocess: start, wait until it listens, signal, kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
import yaml

from spider.storage.db import DatabaseConfig, SqliteConfig

START_DEADLINE = 60.0
EXIT_DEADLINE = 30.0


def database_yaml(config: DatabaseConfig) -> dict[str, Any]:
    """``runtime.db`` for ``config``."""
    if isinstance(config, SqliteConfig):
        return {"sqlite": str(config.sqlite)}
    credentials = config.credentials
    assert credentials is not None
    return {
        "host": config.host,
        "port": config.port,
        "name": config.name,
        "max_connections": config.max_connections,
        "credentials": {"username": credentials.username, "password": credentials.password},
    }


def database_engine(config: DatabaseConfig) -> sa.Engine:
    """A direct connection to the service's database, to corrupt rows behind its back."""
    if isinstance(config, SqliteConfig):
        return sa.create_engine(f"sqlite:///{config.sqlite}")
    credentials = config.credentials
    assert credentials is not None
    return sa.create_engine(
        sa.URL.create(
            "mysql+pymysql",
            username=credentials.username,
            password=credentials.password,
            host=config.host,
            port=config.port,
            database=config.name,
        )
    )


def write_config(directory: Path, database: DatabaseConfig | None, **extra: Any) -> Path:
    """A storage YAML file listening on a free loopback port."""
    data: dict[str, Any] = {"host": "127.0.0.1", "port": 0, **extra}
    if database is not None:
        data.setdefault("runtime", {})["db"] = database_yaml(database)
    path = directory / "storage.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@attrs.define(eq=False)
class StorageProcess:
    """A running storage process whose stderr (JSON log lines) is collected as it arrives."""

    process: subprocess.Popen[str]
    lines: list[str] = attrs.field(factory=list)
    listening: threading.Event = attrs.field(factory=threading.Event)
    port: int = 0
    reader: threading.Thread | None = None

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if not self.listening.is_set() and "storage listening on" in line:
                self.port = json.loads(line)["port"]
                self.listening.set()
        self.process.stderr.close()
        self.listening.set()  # the process ended: stop waiting

    def _reap(self) -> int:
        status = self.process.wait(EXIT_DEADLINE)
        if self.reader is not None:
            self.reader.join(EXIT_DEADLINE)
        return status

    def records(self) -> list[dict[str, Any]]:
        """The log records so far."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and return the exit status."""
        self.process.send_signal(signum)
        return self._reap()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self.process.kill()
        self._reap()


def spawn(*args: str | Path, cwd: Path) -> StorageProcess:
    """Start ``python -m spider.storage args`` without waiting for it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "spider.storage", *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SPIDER_LOG_LEVEL": "INFO"},
    )
    storage = StorageProcess(process)
    storage.reader = threading.Thread(target=storage._drain, daemon=True)
    storage.reader.start()
    return storage


@contextmanager
def running_storage(*args: str | Path, cwd: Path) -> Iterator[StorageProcess]:
    """A storage process that listens; killed on the way out if still running."""
    storage = spawn(*args, cwd=cwd)
    try:
        if not storage.listening.wait(START_DEADLINE) or storage.port == 0:
            raise AssertionError("storage did not start:\n" + "".join(storage.lines))
        yield storage
    finally:
        if storage.process.poll() is None:
            storage.kill()
