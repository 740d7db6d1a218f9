"""The tables: Spider's (docs/upstream.md#the-schema) plus ``task_outputs`` and ``schema_version``.

One ``MetaData`` serves both backends; dialect variants give MariaDB/MySQL Spider's exact column
types (``BIGINT UNSIGNED``, ``LONGBLOB``, ``ENUM``...) and SQLite the types it needs, notably
``INTEGER PRIMARY KEY AUTOINCREMENT`` so that ids are never reused after rows are deleted.

Times are ``DATETIME(6)`` in UTC on MariaDB/MySQL and SQLAlchemy's ISO text form on SQLite: both
readable by an operator, ordered, and exact to the microsecond. Every time comes from the caller
(the service's clock); the server's clock and time zone are never used.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from spider.core.job_state import JobState

SCHEMA_VERSION = 1
"""The schema this code writes; ``create_schema`` refuses a database with a newer one."""

_MYSQL = ("mysql", "mariadb")
_EPOCH = datetime.datetime(1970, 1, 1)


class LivenessState(enum.Enum):
    """An execution manager's state; the values are Spider's DB enum spellings."""

    ALIVE = "Alive"
    DEAD = "Dead"


class PosixTime(sa.TypeDecorator[float]):
    """POSIX seconds in Python; a naive UTC datetime (microsecond precision) in the database."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[datetime.datetime]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(
        self, value: float | None, dialect: sa.Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        return datetime.datetime.fromtimestamp(value, datetime.UTC).replace(tzinfo=None)

    def process_result_value(self, value: object, dialect: sa.Dialect) -> float | None:
        if value is None:
            return None
        assert isinstance(value, datetime.datetime)
        return (value - _EPOCH).total_seconds()


class ExactString(sa.TypeDecorator[str]):
    """A VARCHAR compared byte for byte, trailing spaces included, on every backend.

    SQLite compares bytes already; MariaDB and MySQL need a binary NO PAD collation, whose name
    differs between them (``utf8mb4_bin`` ignores trailing spaces on both).
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[str]:
        if dialect.name in _MYSQL:
            mariadb = getattr(dialect, "is_mariadb", False)
            collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
            return dialect.type_descriptor(mysql.VARCHAR(self.length, collation=collation))
        return dialect.type_descriptor(sa.String(self.length))


def _enum_values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


def _state_column(
    enum_class: type[enum.Enum], constraint: str, default: enum.Enum
) -> sa.Column[Any]:
    # Native ENUM on MariaDB/MySQL; VARCHAR with a CHECK constraint on SQLite.
    column_type = sa.Enum(
        enum_class,
        name=constraint,
        values_callable=_enum_values,
        create_constraint=True,
        validate_strings=True,
    )
    return sa.Column("state", column_type, nullable=False, server_default=str(default.value))


_ID = (
    sa.BigInteger()
    .with_variant(mysql.BIGINT(unsigned=True), *_MYSQL)
    .with_variant(sa.Integer(), "sqlite")
)
_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)
_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
_COUNT = sa.Integer().with_variant(mysql.INTEGER(unsigned=True), *_MYSQL)
_PORT = sa.Integer().with_variant(mysql.SMALLINT(unsigned=True), *_MYSQL)
_PASSWORD = sa.LargeBinary().with_variant(mysql.VARBINARY(2048), *_MYSQL)
_TIME = PosixTime()

# utf8mb4_bin rather than the server's default collation, which ignores case and accents.
_MYSQL_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
# AUTOINCREMENT: SQLite would otherwise reuse the id of a deleted newest row. No RETURNING:
# ids come from the driver's last-insert id, which MySQL and every MariaDB support.
_ID_TABLE_OPTIONS: dict[str, Any] = {
    **_MYSQL_OPTIONS,
    "sqlite_autoincrement": True,
    "implicit_returning": False,
}


def _id_column(name: str = "id") -> sa.Column[int]:
    return sa.Column(name, _ID, primary_key=True, autoincrement=True)


metadata = sa.MetaData()

resource_groups = sa.Table(
    "resource_groups",
    metadata,
    _id_column(),
    sa.Column("external_id", ExactString(256), nullable=False),
    sa.Column("password", _PASSWORD, nullable=False),
    sa.Index("external_resource_group_id", "external_id", unique=True),
    **_ID_TABLE_OPTIONS,
)

jobs = sa.Table(
    "jobs",
    metadata,
    _id_column(),
    sa.Column(
        "resource_group_id",
        _ID,
        sa.ForeignKey(
            resource_groups.c.id,
            name="job_resource_group",
            onupdate="RESTRICT",
            ondelete="RESTRICT",
        ),
        nullable=False,
    ),
    _state_column(JobState, "job_state_value", JobState.READY),
    sa.Column("compressed_serialized_task_graph", _BLOB, nullable=False),
    sa.Column("compressed_serialized_job_inputs", _BLOB, nullable=False),
    sa.Column("serialized_job_outputs", _BLOB, nullable=True),
    sa.Column("error_message", _TEXT, nullable=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("ended_at", _TIME, nullable=True),
    # Vestigial in Spider (never read or written); kept so the schema stays Spider's.
    sa.Column("max_num_retries", _COUNT, nullable=False, server_default="0"),
    sa.Column("num_retries", _COUNT, nullable=False, server_default="0"),
    sa.Index("job_state", "state"),
    # Ours: retention deletes by ended_at, which is NULL until a job terminates.
    sa.Index("job_ended_at", "ended_at"),
    **_ID_TABLE_OPTIONS,
)

execution_managers = sa.Table(
    "execution_managers",
    metadata,
    _id_column(),
    sa.Column("ip_address", sa.String(45), nullable=False),
    _state_column(LivenessState, "execution_manager_state_value", LivenessState.ALIVE),
    sa.Column("last_heartbeat_at", _TIME, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("death_confirmed_at", _TIME, nullable=True),
    sa.Index("execution_manager_liveness", "state", "last_heartbeat_at"),
    **_ID_TABLE_OPTIONS,
)

schedulers = sa.Table(
    "schedulers",
    metadata,
    _id_column(),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("port", _PORT, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    **_ID_TABLE_OPTIONS,
)

sessions = sa.Table("sessions", metadata, _id_column("session_id"), **_ID_TABLE_OPTIONS)

# Ours: finished tasks' output frames, so a recovered Running job resumes instead of restarting.
task_outputs = sa.Table(
    "task_outputs",
    metadata,
    sa.Column(
        "job_id",
        _ID,
        sa.ForeignKey(jobs.c.id, name="task_output_job", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("task_index", _ID, primary_key=True, autoincrement=False),
    sa.Column("output_frame", _BLOB, nullable=False),
    **_MYSQL_OPTIONS,
)

# Ours: a job's regular tasks as the task listing shows them once its graph is dropped (states,
# instance counts, times, last errors; ``spider.storage.task_records``), one row per job, written
# with the job state change that drops the graph.
task_records = sa.Table(
    "task_records",
    metadata,
    sa.Column(
        "job_id",
        _ID,
        sa.ForeignKey(jobs.c.id, name="task_records_job", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("records", _BLOB, nullable=False),
    **_MYSQL_OPTIONS,
)

# Ours: one row, the version of the schema in the database, for future migrations.
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", _COUNT, primary_key=True, autoincrement=False),
    **_MYSQL_OPTIONS,
)
