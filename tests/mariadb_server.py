"""A private MariaDB server for tests: its own data directory, port and socket.

Needs Debian's ``mariadb-server`` package (``scripts/ci-install-mariadb.sh`` installs it). The
fixtures that use this live in ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import sqlalchemy as sa

from spider.storage.db import DatabaseCredentials, MariaDbConfig

MARIADB_START_DEADLINE = 60.0
MARIADB_STOP_DEADLINE = 30.0
TEST_USER = DatabaseCredentials("spider-test", "spider-test-password")
TEST_DATABASE = "spider-test"
INSTALL_HINT = (
    "MariaDB is not installed, so the MariaDB storage tests cannot run: install it with "
    "`sudo scripts/ci-install-mariadb.sh` (Debian/Ubuntu: apt-get install mariadb-server)"
)

# Below mariadbd's defaults where they only cost start-up time and disk; max_allowed_packet is
# raised so the large-blob tests fit (production servers need the same: docs/storage-persistence.md,
# "Configuration").
_SERVER_OPTIONS = (
    "--bind-address=127.0.0.1",
    "--user=root",
    "--skip-name-resolve",
    "--max-allowed-packet=256M",
    "--innodb-buffer-pool-size=128M",
    "--innodb-log-file-size=64M",
    # A test server needs no durability; DDL per test (a fresh database each) is fsync-bound.
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
)

_DATABASE_NUMBERS = itertools.count(1)


@attrs.frozen
class MariaDbServer:
    """A running private MariaDB server: TCP for the code under test, a socket for root."""

    port: int
    socket_path: Path
    admin_engine: sa.Engine = attrs.field(repr=False)

    def config(self, name: str = TEST_DATABASE) -> MariaDbConfig:
        """How Spider-py connects to database ``name`` as the test user."""
        return MariaDbConfig(
            host="127.0.0.1", port=self.port, name=name, max_connections=16, credentials=TEST_USER
        )

    def admin(self) -> sa.Connection:
        """An autocommit root connection (use it in a ``with``)."""
        return self.admin_engine.connect()

    @contextmanager
    def fresh_database(self) -> Iterator[MariaDbConfig]:
        """A new empty database for one test, dropped afterwards."""
        name = f"{TEST_DATABASE}-{next(_DATABASE_NUMBERS)}"
        with self.admin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
        try:
            yield self.config(name)
        finally:
            with self.admin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE `{name}`")


def find_program(name: str) -> str | None:
    # sbin is often missing from a non-root PATH, and Debian puts mariadbd there.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def free_tcp_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_mariadb(base: Path, options: Sequence[str] = ()) -> Iterator[MariaDbServer]:
    """Install a data directory under ``base``, run ``mariadbd`` on it, stop it afterwards.

    ``options`` go after the test defaults, so they override them (e.g. durable settings for a
    benchmark).
    """
    mariadbd = find_program("mariadbd")
    install_db = find_program("mariadb-install-db")
    if mariadbd is None or install_db is None:
        raise FileNotFoundError(INSTALL_HINT)
    datadir = base / "data"
    log = base / "mariadbd.log"
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--datadir={datadir}",
            "--user=root",
        ],
        check=True,
        capture_output=True,
    )
    socket_path = base / "mariadbd.sock"
    server = MariaDbServer(
        port=free_tcp_port(),
        socket_path=socket_path,
        admin_engine=sa.create_engine(
            sa.URL.create(
                "mysql+pymysql", username="root", query={"unix_socket": str(socket_path)}
            ),
            # No TLS on a local socket: PyMySQL's opportunistic TLS costs ~50 ms per connection.
            connect_args={"ssl_disabled": True},
            isolation_level="AUTOCOMMIT",
        ),
    )
    process = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={server.socket_path}",
            f"--port={server.port}",
            f"--pid-file={base / 'mariadbd.pid'}",
            f"--log-error={log}",
            *_SERVER_OPTIONS,
            *options,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_accepting(server, process, log)
        with server.admin() as conn:
            for host in ("127.0.0.1", "localhost"):
                conn.exec_driver_sql(
                    f"CREATE USER '{TEST_USER.username}'@'{host}' "
                    f"IDENTIFIED BY '{TEST_USER.password}'"
                )
                conn.exec_driver_sql(
                    f"GRANT ALL PRIVILEGES ON `{TEST_DATABASE}%%`.* "
                    f"TO '{TEST_USER.username}'@'{host}'"
                )
            conn.exec_driver_sql(f"CREATE DATABASE `{TEST_DATABASE}`")
        yield server
    finally:
        server.admin_engine.dispose()
        _stop(process)
        shutil.rmtree(datadir, ignore_errors=True)


def _wait_until_accepting(
    server: MariaDbServer, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + MARIADB_START_DEADLINE
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"mariadbd exited with status {process.returncode} while starting; its log "
                f"({log}) ends with:\n{_tail(log)}"
            )
        # Probe with a socket we close ourselves: PyMySQL leaks its socket on a refused connect.
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(server.socket_path))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"mariadbd did not accept connections within {MARIADB_START_DEADLINE} s; "
                    f"its log ({log}) ends with:\n{_tail(log)}"
                ) from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(MARIADB_STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
