"""The MariaDB/MySQL backend: SQLAlchemy Core over PyMySQL, Spider's schema and locking.

Every transaction runs at READ COMMITTED (upstream uses it for the dead-EM sweep, #371): all
read-modify-writes lock their rows with ``SELECT ... FOR UPDATE``, so nothing relies on
REPEATABLE READ snapshots, and no gap locks make unrelated inserts wait. Only standard
MySQL/MariaDB SQL is used (no ``RETURNING``), so MySQL 8 works too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects.mysql import insert as mysql_insert

from spider.storage.db._sql import (
    DuplicateKey,
    ForeignKeyViolation,
    SqlDatabase,
    TransactionConflict,
)
from spider.storage.db.interface import DatabaseError, DatabaseUnavailable, PayloadTooLarge

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the server to accept a connection."""

POOL_TIMEOUT = 30.0
"""Seconds a call waits for a free pooled connection before failing as unavailable."""

_FOREIGN_KEY = 1452
_DUPLICATE = 1062
_CONFLICTS = frozenset({1205, 1213})  # lock wait timeout, deadlock
_PACKET_TOO_LARGE = frozenset({1153, 1301})
# Server gone, lost, refused, shutting down, too many connections, connection killed.
_UNAVAILABLE = frozenset({1040, 1053, 1927, 2002, 2003, 2005, 2006, 2013, 2055})
_GONE_AWAY = frozenset({2006, 2013})
# Disk full, table full, error writing a file, read-only server (--read-only, read_only=ON,
# InnoDB read-only): the server cannot write until an operator acts, and then it can again.
_CANNOT_WRITE = frozenset({1021, 1026, 1114, 1290, 1836, 1874})
# Bytes PyMySQL backslash-escapes in string and blob literals.
_ESCAPED = (b"\0", b"\n", b"\r", b"\\", b"'", b'"', b"\x1a")


class MariaDbDatabase(SqlDatabase):
    """``StorageDatabase`` in an existing MariaDB/MySQL database."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        name: str,
        username: str,
        password: str,
        max_connections: int = 8,
    ) -> None:
        engine = sa.create_engine(
            sa.URL.create(
                "mysql+pymysql",
                username=username,
                password=password,
                host=host,
                port=port,
                database=name,
                query={"charset": "utf8mb4"},
            ),
            connect_args={"connect_timeout": CONNECT_TIMEOUT},
            isolation_level="READ COMMITTED",
            pool_size=max_connections,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT,
            pool_pre_ping=True,
            # Every checkout ends its own transaction (commit, or rollback on error), so the
            # pool's extra ROLLBACK round trip on return is pure cost.
            pool_reset_on_return=None,
        )
        sa.event.listen(engine, "connect", self._read_packet_limit)
        # Until a connection tells us: the smallest default among MariaDB and MySQL versions.
        self._max_allowed_packet = 16 * 1024 * 1024
        super().__init__(engine, f"MariaDB database {name!r} at {host}:{port}")

    def translate_error(self, exc: sqlalchemy.exc.DBAPIError) -> DatabaseError:
        """Read the MySQL error number of a driver error."""
        args = getattr(exc.orig, "args", ())
        errno = args[0] if args and isinstance(args[0], int) else None
        detail = f"{self._description}: {exc.orig}"
        if errno == _FOREIGN_KEY:
            return ForeignKeyViolation(detail)
        if errno == _DUPLICATE:
            return DuplicateKey(detail)
        if errno in _CONFLICTS:
            return TransactionConflict(detail)
        if errno in _PACKET_TOO_LARGE or (
            errno in _GONE_AWAY and self._statement_size(exc) >= self._max_allowed_packet
        ):
            # The server drops the connection on an oversized packet, which looks like a
            # network failure; retrying would fail forever, so say what happened.
            return PayloadTooLarge(
                f"{self._description}: a statement of about {self._statement_size(exc)} bytes "
                f"exceeds the server's max_allowed_packet ({self._max_allowed_packet} bytes): "
                "raise max_allowed_packet on the server (at most 1G)"
            )
        if errno in _CANNOT_WRITE:
            return DatabaseUnavailable(
                f"{self._description} cannot take writes ({exc.orig}): retry later; free disk "
                "space on the server, or turn its read-only mode off"
            )
        if errno in _UNAVAILABLE or exc.connection_invalidated or errno == 0:
            return DatabaseUnavailable(
                f"{self._description} is unavailable ({exc.orig}): retry later; if it "
                "persists, check that the server is running and reachable"
            )
        return DatabaseError(f"{self._description} failed: {exc.orig}")

    def insert_unless_present(self, table: sa.Table) -> sa.Insert:
        """``INSERT ... ON DUPLICATE KEY UPDATE`` of nothing.

        Not ``INSERT IGNORE``: that would also turn a foreign-key violation into a warning.
        """
        first_key = table.primary_key.columns[0]
        return mysql_insert(table).on_duplicate_key_update({first_key.name: first_key})

    def _read_packet_limit(self, dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT @@max_allowed_packet")
            (self._max_allowed_packet,) = cursor.fetchone()
        finally:
            cursor.close()

    @staticmethod
    def _statement_size(exc: sqlalchemy.exc.DBAPIError) -> int:
        """Roughly the bytes the failed statement took on the wire (values escaped)."""
        params = exc.params
        values: Iterable[object]
        if isinstance(params, Mapping):
            values = params.values()
        elif isinstance(params, list | tuple):
            values = params
        else:
            values = ()
        return len(exc.statement or "") + sum(_escaped_size(value) for value in values)


def _escaped_size(value: object) -> int:
    """Bytes a string or blob takes in PyMySQL's SQL text: quoted, specials backslashed."""
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        return 0
    return len(value) + sum(value.count(special) for special in _ESCAPED) + len("_binary''")
