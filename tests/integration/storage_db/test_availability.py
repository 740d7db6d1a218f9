"""Failures of the database itself: unreachable, locked, broken connections, oversized blobs.

Each must surface as a domain error (``DatabaseUnavailable`` for "retry later"), never as a raw
driver exception.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spider.core.ids import ResourceGroupId
from spider.storage.db import (
    DatabaseError,
    DatabaseUnavailable,
    MariaDbDatabase,
    PayloadTooLarge,
    SqliteDatabase,
    open_database,
)
from tests.mariadb_server import TEST_USER, MariaDbServer, free_tcp_port
from tests.small_disk import fill, small_filesystem

from .storage_helpers import INPUTS, NOW, add_group


def test_sqlite_writers_wait_for_the_write_lock_only_up_to_the_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "storage.db"
    database = SqliteDatabase(path, busy_timeout=0.05)
    database.create_schema()
    group = add_group(database)
    other_writer = sqlite3.connect(path, isolation_level=None)
    try:
        other_writer.execute("BEGIN EXCLUSIVE")

        with pytest.raises(DatabaseUnavailable, match="database is locked"):
            database.new_session()
        # WAL: readers are not blocked by the writer.
        assert database.get_resource_group_password_hash(group) is not None

        other_writer.execute("ROLLBACK")
        assert database.new_session() > 0
    finally:
        other_writer.close()
        database.close()


def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "missing-directory" / "storage.db")
    try:
        with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
            database.create_schema()
    finally:
        database.close()


@pytest.mark.mariadb
def test_a_mariadb_server_that_is_not_listening_is_unavailable() -> None:
    port = free_tcp_port()
    database = MariaDbDatabase(
        host="127.0.0.1", port=port, name="spider", username="spider", password="x"
    )
    try:
        with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port} is unavailable"):
            database.create_schema()
        with pytest.raises(DatabaseUnavailable):
            database.new_session()
    finally:
        database.close()


@pytest.mark.mariadb
def test_wrong_mariadb_credentials_are_an_error_not_an_outage(
    mariadb_server: MariaDbServer,
) -> None:
    database = MariaDbDatabase(
        host="127.0.0.1",
        port=mariadb_server.port,
        name="spider-test",
        username=TEST_USER.username,
        password="not the password",
    )
    try:
        with pytest.raises(DatabaseError, match="Access denied") as raised:
            database.create_schema()
        assert not isinstance(raised.value, DatabaseUnavailable)
    finally:
        database.close()


@pytest.mark.mariadb
def test_killed_mariadb_connections_are_replaced_transparently(
    mariadb_server: MariaDbServer,
) -> None:
    with mariadb_server.fresh_database() as config:
        database = open_database(config, environ={})
        try:
            database.create_schema()
            first = database.new_session()
            with mariadb_server.admin() as admin:
                victims = admin.exec_driver_sql(
                    "SELECT id FROM information_schema.PROCESSLIST WHERE user = %s",
                    (TEST_USER.username,),
                ).all()
                assert victims, "the pool holds no connection to kill"
                for (victim,) in victims:
                    admin.exec_driver_sql(f"KILL CONNECTION {int(victim)}")

            assert database.new_session() > first
        finally:
            database.close()


@pytest.mark.mariadb
def test_a_blob_over_max_allowed_packet_is_payload_too_large_not_an_outage(
    mariadb_server: MariaDbServer,
) -> None:
    limit = 1024 * 1024
    with mariadb_server.fresh_database() as config:
        with mariadb_server.admin() as admin:
            (original,) = admin.exec_driver_sql("SELECT @@global.max_allowed_packet").one()
            admin.exec_driver_sql(f"SET GLOBAL max_allowed_packet = {limit}")
        database = open_database(config, environ={})
        try:
            database.create_schema()
            group = add_group(database)

            with pytest.raises(PayloadTooLarge, match=f"max_allowed_packet \\({limit} bytes\\)"):
                database.insert_job(group, b"\x00" * limit, INPUTS, NOW)
            # The broken connection was discarded: the next call works.
            assert database.insert_job(group, b"small", INPUTS, NOW) > 0
        finally:
            database.close()
            with mariadb_server.admin() as admin:
                admin.exec_driver_sql(f"SET GLOBAL max_allowed_packet = {int(original)}")


def _write_jobs_until_it_fails(database: SqliteDatabase, group: ResourceGroupId) -> None:
    for _ in range(200):  # the free pages left in the file and its WAL take the first few
        database.insert_job(group, b"\xff" * 16_384, INPUTS, NOW)
    raise AssertionError("200 jobs of 16 KiB fitted on a full 2 MiB disk")


def test_a_full_disk_is_unavailable_until_space_is_freed(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", "2m") as disk:
        database = SqliteDatabase(disk / "storage.db")
        try:
            database.create_schema()
            group = add_group(database)
            filler = fill(disk)

            with pytest.raises(DatabaseUnavailable, match=r"cannot take writes.*free disk space"):
                _write_jobs_until_it_fails(database, group)
            # Reads go on while writes cannot.
            assert database.get_resource_group_password_hash(group) is not None

            filler.unlink()
            assert database.insert_job(group, b"graph", INPUTS, NOW) > 0
        finally:
            database.close()


@pytest.mark.mariadb
def test_a_read_only_mariadb_server_is_unavailable_until_writable_again(
    mariadb_server: MariaDbServer,
) -> None:
    with mariadb_server.fresh_database() as config:
        database = open_database(config, environ={})
        try:
            database.create_schema()
            group = add_group(database)
            with mariadb_server.admin() as admin:
                admin.exec_driver_sql("SET GLOBAL read_only = ON")
                try:
                    with pytest.raises(DatabaseUnavailable, match="cannot take writes"):
                        database.insert_job(group, b"graph", INPUTS, NOW)
                    assert database.get_resource_group_password_hash(group) is not None
                finally:
                    admin.exec_driver_sql("SET GLOBAL read_only = OFF")
            assert database.insert_job(group, b"graph", INPUTS, NOW) > 0
        finally:
            database.close()
