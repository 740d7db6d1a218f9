"""``runtime.db`` configuration: both YAML forms, credentials from the environment, the factory."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from spider.core.config import ConfigError, structure_config
from spider.storage.db import (
    DatabaseConfig,
    DatabaseCredentials,
    MariaDbConfig,
    MariaDbDatabase,
    SqliteConfig,
    SqliteDatabase,
    open_database,
)
from spider.storage.db.config import PASSWORD_ENV, USERNAME_ENV


@attrs.frozen
class Runtime:
    """Stands in for the storage service's ``runtime`` block."""

    db: DatabaseConfig | None = None


def test_the_sqlite_form_names_a_file() -> None:
    runtime = structure_config({"db": {"sqlite": "/var/lib/spider/storage.db"}}, Runtime)

    assert runtime.db == SqliteConfig(Path("/var/lib/spider/storage.db"))


def test_spiders_mariadb_form_loads_with_defaults() -> None:
    runtime = structure_config({"db": {"host": "spider-database", "name": "spider-db"}}, Runtime)

    assert runtime.db == MariaDbConfig(host="spider-database", name="spider-db")
    assert isinstance(runtime.db, MariaDbConfig)
    assert (runtime.db.port, runtime.db.max_connections, runtime.db.credentials) == (3306, 8, None)


def test_spiders_mariadb_form_loads_with_every_key() -> None:
    data = {
        "host": "db",
        "port": 3307,
        "name": "spider-db",
        "max_connections": 64,
        "credentials": {"username": "spider", "password": "s3cret"},
    }

    runtime = structure_config({"db": data}, Runtime)

    assert runtime.db == MariaDbConfig(
        host="db",
        port=3307,
        name="spider-db",
        max_connections=64,
        credentials=DatabaseCredentials("spider", "s3cret"),
    )
    assert "s3cret" not in repr(runtime.db)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"sqlite": "a.db", "host": "db"}, r"db: unknown key\(s\) '(host|sqlite)'"),
        ({"host": "db", "name": "n", "pool": 3}, r"db: unknown key\(s\) 'pool'"),
        ({"host": "db", "name": "n", "max_connections": 0}, "db: .*max_connections"),
        ({"host": "db", "name": "n", "port": 70000}, "db: .*port"),
        # Which message depends on the key cattrs' default union disambiguation picks.
        ({"name": "n"}, r"db(\.host: required key is missing|: .*Couldn't disambiguate)"),
    ],
)
def test_bad_database_config_is_rejected_with_the_key(data: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        structure_config({"db": data}, Runtime)


def test_credentials_come_from_the_environment_when_not_configured() -> None:
    config = MariaDbConfig(host="db", name="n")

    credentials = config.resolve_credentials({USERNAME_ENV: "u", PASSWORD_ENV: "p"})

    assert credentials == DatabaseCredentials("u", "p")


def test_configured_credentials_win_over_the_environment() -> None:
    config = MariaDbConfig(host="db", name="n", credentials=DatabaseCredentials("a", "b"))

    assert config.resolve_credentials({USERNAME_ENV: "u", PASSWORD_ENV: "p"}) == (
        DatabaseCredentials("a", "b")
    )


@pytest.mark.parametrize("missing", [USERNAME_ENV, PASSWORD_ENV])
def test_a_missing_credential_variable_is_named(missing: str) -> None:
    environ = {USERNAME_ENV: "u", PASSWORD_ENV: "p"}
    del environ[missing]

    with pytest.raises(ConfigError, match=f"environment lacks {missing}:"):
        open_database(MariaDbConfig(host="db", name="n"), environ)


def test_open_database_picks_the_configured_backend(tmp_path: Path) -> None:
    sqlite = open_database(SqliteConfig(tmp_path / "storage.db"))
    mariadb = open_database(
        MariaDbConfig(host="db.invalid", name="n"), {USERNAME_ENV: "u", PASSWORD_ENV: "p"}
    )
    try:
        assert isinstance(sqlite, SqliteDatabase)
        assert isinstance(mariadb, MariaDbDatabase)
        assert "db.invalid:3306" in repr(mariadb)
    finally:
        sqlite.close()
        mariadb.close()
