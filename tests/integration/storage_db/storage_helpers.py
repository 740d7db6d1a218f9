"""Helpers for the storage database tests: resource groups, jobs in a given state, raw counts."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import DatabaseConfig, SqliteConfig, StorageDatabase

NOW = 1_700_000_000.25
"""A realistic POSIX time, exact in binary, so stored times compare equal."""

GRAPH = b"\x28\xb5\x2f\xfd graph \x00\xff"
INPUTS = b"\x28\xb5\x2f\xfd inputs \x00\xff"
OUTPUTS = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x2a"

# A legal path from Ready to every state (each step is in LEGAL_TRANSITIONS).
PATHS: Mapping[JobState, tuple[JobState, ...]] = {
    JobState.READY: (),
    JobState.RUNNING: (JobState.RUNNING,),
    JobState.COMMIT_READY: (JobState.RUNNING, JobState.COMMIT_READY),
    JobState.CLEANUP_READY: (JobState.RUNNING, JobState.CLEANUP_READY),
    JobState.SUCCEEDED: (JobState.RUNNING, JobState.SUCCEEDED),
    JobState.FAILED: (JobState.RUNNING, JobState.FAILED),
    JobState.CANCELLED: (JobState.CANCELLED,),
}


def add_group(db: StorageDatabase, external_id: str = "group") -> ResourceGroupId:
    return db.add_resource_group(external_id, b"hash of " + external_id.encode())


def add_job(
    db: StorageDatabase,
    group: ResourceGroupId,
    state: JobState = JobState.READY,
    *,
    now: float = NOW,
    graph: bytes = GRAPH,
) -> JobId:
    """A job driven along ``PATHS`` to ``state``; every step at time ``now``."""
    job_id = db.insert_job(group, graph, INPUTS, now)
    for step in PATHS[state]:
        db.transition_job(job_id, step, now)
    return job_id


def raw_engine(config: DatabaseConfig) -> sa.Engine:
    """A plain engine on the test's database, to look behind the interface."""
    if isinstance(config, SqliteConfig):
        return sa.create_engine(sa.URL.create("sqlite+pysqlite", database=str(config.sqlite)))
    assert config.credentials is not None
    return sa.create_engine(
        sa.URL.create(
            "mysql+pymysql",
            username=config.credentials.username,
            password=config.credentials.password,
            host=config.host,
            port=config.port,
            database=config.name,
        )
    )


def execute_raw(config: DatabaseConfig, sql: str) -> list[tuple[object, ...]]:
    """Run one SQL statement behind the interface's back; its rows, if any."""
    engine = raw_engine(config)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()
