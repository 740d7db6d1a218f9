"""The SQLite backend: one database file, WAL mode, one writer at a time.

Readers never block (WAL). Writers in this process take turns on a lock, then start with
``BEGIN IMMEDIATE``: it takes SQLite's write lock up front (waiting up to the busy timeout for a
writer in another process), so a transaction never reads under a shared lock and then fails to
upgrade it. ``synchronous=FULL`` makes a
committed transaction survive a power loss, as acknowledged writes must.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from spider.storage.db._sql import (
    WRITES_OPTION,
    DuplicateKey,
    ForeignKeyViolation,
    SqlDatabase,
)
from spider.storage.db.interface import DatabaseError, DatabaseUnavailable, PayloadTooLarge

DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds a writer waits for the write lock before the call fails as ``DatabaseUnavailable``."""

DEFAULT_MAX_CONNECTIONS = 8

# Primary result codes (the low byte of an extended code) that mean "not now", not "never".
_UNAVAILABLE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR}
)
# The file cannot take writes until an operator frees space or makes it writable: retrying
# later succeeds, so callers must keep what they were writing rather than give it up.
_CANNOT_WRITE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY})
_DUPLICATE_CODES = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


class SqliteDatabase(SqlDatabase):
    """``StorageDatabase`` in the SQLite file at ``path`` (its directory must exist)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        engine = sa.create_engine(
            sa.URL.create("sqlite+pysqlite", database=str(path)),
            # The timeout is sqlite3's busy handler; check_same_thread=False is SQLAlchemy's
            # default for a pooled file database: a connection serves one thread at a time.
            connect_args={"timeout": busy_timeout},
            pool_size=max_connections,
            max_overflow=0,
        )
        sa.event.listen(engine, "connect", _configure_connection)
        sa.event.listen(engine, "begin", _begin)
        super().__init__(engine, f"SQLite database {path}")
        self._busy_timeout = busy_timeout
        self._writer = threading.Lock()

    @contextmanager
    def writer_turn(self) -> Iterator[None]:
        """This process's writers take turns on a lock before asking SQLite for its write lock.

        SQLite's busy handler polls with growing sleeps, so among many writers in one process
        an unlucky one can starve past the busy timeout; a lock hands the turn over directly.
        The busy timeout still governs waiting for other processes.
        """
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise DatabaseUnavailable(
                f"{self._description}: no turn to write within {self._busy_timeout} s; "
                "retry later (a write transaction is taking unusually long)"
            )
        try:
            yield
        finally:
            self._writer.release()

    def translate_error(self, exc: sqlalchemy.exc.DBAPIError) -> DatabaseError:
        """Read the SQLite result code of a driver error."""
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            return ForeignKeyViolation(f"{self._description}: {exc.orig}")
        if code in _DUPLICATE_CODES:
            return DuplicateKey(f"{self._description}: {exc.orig}")
        if code is not None and code & 0xFF == sqlite3.SQLITE_TOOBIG:
            return PayloadTooLarge(
                f"{self._description}: a value exceeds SQLite's maximum blob size ({exc.orig})"
            )
        if code is not None and code & 0xFF in _CANNOT_WRITE_CODES:
            return DatabaseUnavailable(
                f"{self._description} cannot take writes ({exc.orig}): retry later; free disk "
                "space on its filesystem, or make the file and its directory writable"
            )
        if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
            return DatabaseUnavailable(
                f"{self._description} is unavailable ({exc.orig}): retry later; if it persists, "
                "check that the file is readable and writable and not locked by another program"
            )
        return DatabaseError(f"{self._description} failed: {exc.orig}")

    def insert_unless_present(self, table: sa.Table) -> sa.Insert:
        """``INSERT ... ON CONFLICT DO NOTHING`` (foreign-key violations still raise)."""
        return sqlite_insert(table).on_conflict_do_nothing()


def _configure_connection(dbapi_connection: Any, _record: object) -> None:
    # isolation_level=None stops sqlite3 from issuing BEGIN itself; `_begin` issues it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _begin(conn: sa.Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITES_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")
