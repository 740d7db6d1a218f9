"""Fixtures shared by the whole suite.

``mariadb_server`` starts a private MariaDB server once per session (Debian's ``mariadb-server``
package; ``scripts/ci-install-mariadb.sh`` installs it): skipped when it is not installed, except
under CI (env ``CI`` set), where that is a failure. ``storage_database`` gives each test a fresh,
schema-created ``StorageDatabase`` on SQLite and, marked ``mariadb``, on that server.
``stub_modules`` generates grpcio stubs from ``protos/`` once per session, for the tests that
drive the services through a client independent of Spider-py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spider.storage.db import DatabaseConfig, SqliteConfig, StorageDatabase, open_database
from tests.integration.storage_service.grpc_client import StubModules, generated_stubs

from .mariadb_server import INSTALL_HINT, MariaDbServer, find_program, running_mariadb


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    """A private MariaDB server for the session; skipped if not installed, except under CI."""
    if find_program("mariadbd") is None or find_program("mariadb-install-db") is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the MariaDB tests: {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    with running_mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def storage_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseConfig]:
    """An empty database: a SQLite file, or a new database on the private MariaDB server."""
    if request.param == "sqlite":
        yield SqliteConfig(tmp_path / "storage.db")
        return
    server: MariaDbServer = request.getfixturevalue("mariadb_server")
    with server.fresh_database() as config:
        yield config


@pytest.fixture
def storage_database_factory(
    storage_config: DatabaseConfig,
) -> Iterator[Callable[[], StorageDatabase]]:
    """Opens more database objects on the test's database (a storage "restart"); closes them."""
    opened: list[StorageDatabase] = []

    def open_another() -> StorageDatabase:
        database = open_database(storage_config, environ={})
        opened.append(database)
        return database

    yield open_another
    for database in opened:
        database.close()


@pytest.fixture
def storage_database(
    storage_database_factory: Callable[[], StorageDatabase],
) -> StorageDatabase:
    """A fresh, empty, schema-created database, on each backend."""
    database = storage_database_factory()
    database.create_schema()
    return database


@pytest.fixture(scope="session")
def stub_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubModules]:
    """grpcio stubs generated from ``protos/``: a client independent of Spider-py's own."""
    with generated_stubs(tmp_path_factory.mktemp("grpc_stubs")) as modules:
        yield modules
