"""The schema: idempotent creation, the version guard, and Spider's exact MariaDB column types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spider.core.job_state import JobState
from spider.storage.db import (
    DatabaseConfig,
    DatabaseError,
    SqliteConfig,
    StorageDatabase,
    open_database,
)
from tests.mariadb_server import MariaDbServer

from .storage_helpers import add_group, add_job, execute_raw

# Spider's schema (docs/upstream.md#the-schema) with times as DATETIME(6), plus task_outputs,
# task_records and schema_version: (table, column) -> (type, nullable).
SPIDER_COLUMNS = {
    ("resource_groups", "id"): ("bigint(20) unsigned", "NO"),
    ("resource_groups", "external_id"): ("varchar(256)", "NO"),
    ("resource_groups", "password"): ("varbinary(2048)", "NO"),
    ("jobs", "id"): ("bigint(20) unsigned", "NO"),
    ("jobs", "resource_group_id"): ("bigint(20) unsigned", "NO"),
    ("jobs", "state"): (
        "enum('Ready','Running','CommitReady','CleanupReady','Succeeded','Failed','Cancelled')",
        "NO",
    ),
    ("jobs", "compressed_serialized_task_graph"): ("longblob", "NO"),
    ("jobs", "compressed_serialized_job_inputs"): ("longblob", "NO"),
    ("jobs", "serialized_job_outputs"): ("longblob", "YES"),
    ("jobs", "error_message"): ("longtext", "YES"),
    ("jobs", "created_at"): ("datetime(6)", "NO"),
    ("jobs", "updated_at"): ("datetime(6)", "NO"),
    ("jobs", "ended_at"): ("datetime(6)", "YES"),
    ("jobs", "max_num_retries"): ("int(10) unsigned", "NO"),
    ("jobs", "num_retries"): ("int(10) unsigned", "NO"),
    ("execution_managers", "id"): ("bigint(20) unsigned", "NO"),
    ("execution_managers", "ip_address"): ("varchar(45)", "NO"),
    ("execution_managers", "state"): ("enum('Alive','Dead')", "NO"),
    ("execution_managers", "last_heartbeat_at"): ("datetime(6)", "NO"),
    ("execution_managers", "created_at"): ("datetime(6)", "NO"),
    ("execution_managers", "death_confirmed_at"): ("datetime(6)", "YES"),
    ("schedulers", "id"): ("bigint(20) unsigned", "NO"),
    ("schedulers", "host"): ("varchar(255)", "NO"),
    ("schedulers", "port"): ("smallint(5) unsigned", "NO"),
    ("schedulers", "created_at"): ("datetime(6)", "NO"),
    ("sessions", "session_id"): ("bigint(20) unsigned", "NO"),
    ("task_outputs", "job_id"): ("bigint(20) unsigned", "NO"),
    ("task_outputs", "task_index"): ("bigint(20) unsigned", "NO"),
    ("task_outputs", "output_frame"): ("longblob", "NO"),
    ("task_records", "job_id"): ("bigint(20) unsigned", "NO"),
    ("task_records", "records"): ("longblob", "NO"),
    ("schema_version", "version"): ("int(10) unsigned", "NO"),
}
SPIDER_INDEXES = {
    ("resource_groups", "external_resource_group_id", 0, "external_id"),
    ("jobs", "job_state", 1, "state"),
    ("jobs", "job_ended_at", 1, "ended_at"),
    ("jobs", "job_resource_group", 1, "resource_group_id"),
    ("execution_managers", "execution_manager_liveness", 1, "state,last_heartbeat_at"),
    ("task_outputs", "PRIMARY", 0, "job_id,task_index"),
    ("task_records", "PRIMARY", 0, "job_id"),
}
SPIDER_FOREIGN_KEYS = {
    ("job_resource_group", "jobs", "resource_groups", "RESTRICT", "RESTRICT"),
    ("task_output_job", "task_outputs", "jobs", "RESTRICT", "CASCADE"),
    ("task_records_job", "task_records", "jobs", "RESTRICT", "CASCADE"),
}


def test_creating_the_schema_again_keeps_the_data(
    storage_database: StorageDatabase,
    storage_database_factory: Callable[[], StorageDatabase],
) -> None:
    group = add_group(storage_database)
    job_id = add_job(storage_database, group, JobState.RUNNING)
    storage_database.record_task_outputs(job_id, 0, b"frame")

    storage_database.create_schema()
    restarted = storage_database_factory()
    restarted.create_schema()

    assert restarted.get_job_status(job_id).state is JobState.RUNNING
    assert restarted.load_task_outputs(job_id) == {0: b"frame"}
    assert restarted.get_resource_group_password_hash(group) is not None


def test_a_database_with_a_newer_schema_is_refused(
    storage_database: StorageDatabase,
    storage_database_factory: Callable[[], StorageDatabase],
    storage_config: DatabaseConfig,
) -> None:
    execute_raw(storage_config, "UPDATE schema_version SET version = 99")

    with pytest.raises(DatabaseError, match=r"schema version 99, newer than .* upgrade Spider-py"):
        storage_database_factory().create_schema()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    config = SqliteConfig(tmp_path / "storage.db")
    storage = open_database(config)
    try:
        storage.create_schema()
        assert execute_raw(config, "PRAGMA journal_mode") == [("wal",)]
    finally:
        storage.close()


@pytest.mark.mariadb
def test_mariadb_tables_have_spiders_exact_column_types_indexes_and_keys(
    mariadb_server: MariaDbServer,
) -> None:
    with mariadb_server.fresh_database() as config:
        storage = open_database(config, environ={})
        storage.create_schema()
        storage.close()
        schema = f"TABLE_SCHEMA = '{config.name}'"
        columns = execute_raw(
            config,
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE "
            f"FROM information_schema.COLUMNS WHERE {schema}",
        )
        indexes = execute_raw(
            config,
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, "
            "GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) "
            f"FROM information_schema.STATISTICS WHERE {schema} "
            "GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE",
        )
        foreign_keys = execute_raw(
            config,
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE "
            f"FROM information_schema.REFERENTIAL_CONSTRAINTS "
            f"WHERE CONSTRAINT_SCHEMA = '{config.name}'",
        )
        collation = execute_raw(
            config,
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS "
            f"WHERE {schema} AND TABLE_NAME = 'resource_groups' AND COLUMN_NAME = 'external_id'",
        )

    assert {(t, c): (kind, null) for t, c, kind, null in columns} == SPIDER_COLUMNS
    assert set(indexes) >= SPIDER_INDEXES
    assert set(foreign_keys) == SPIDER_FOREIGN_KEYS
    assert collation == [("utf8mb4_nopad_bin",)]
