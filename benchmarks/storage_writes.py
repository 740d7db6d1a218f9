"""CPU per storage write on SQLite: the statements as storage runs them against SQLAlchemy Core
statements built per call, and against the bare ``sqlite3`` driver, in the same run.

Storage compiles its hot writes once per database and runs them as driver SQL
(``spider/storage/db/_compiled.py``); before, every write built its SQLAlchemy Core statement
and every write of a group-commit batch took a ``begin_nested()`` savepoint. Both are timed here
on the same file and the same engine, with the same rows:

* **one-task job**: the two transactions a one-task job commits: insert the job Running, then
  lock its state, move it to Succeeded with its outputs, and store its task records;
* **batch of 8 outputs**: one group-commit transaction of eight finished tasks' output frames,
  each under its own savepoint.

``sqlite3`` runs the same SQL text on its own connection: the floor. Every row commits with
``synchronous=FULL`` (one fsync per commit), so wall time includes the disk; CPU is the
thread's own (``time.thread_time``). Prints a markdown table: best of ``--repeats`` runs of
``--number`` operations, and the ratio of each to the built-per-call statements.

Run: ``python benchmarks/storage_writes.py [--number N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import sqlalchemy as sa

from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import _schema as schema
from spider.storage.db._sql import WRITES_OPTION
from spider.storage.db.sqlite import SqliteDatabase
from spider.storage.db.writes import InsertJob, RecordTaskOutputs, TransitionJob

GRAPH = b"g" * 300
INPUTS = b"i" * 40
OUTPUTS = b"o" * 30
RECORDS = b"r" * 60
BATCH = 8

Operation = Callable[[], object]


def shipped(database: SqliteDatabase, group: ResourceGroupId) -> dict[str, Operation]:
    """The writes as storage makes them: through the group commit's ``write_batch``."""
    outputs_job = database.insert_job(group, GRAPH, INPUTS, time.time(), started=True)
    task_indexes = itertools.count()

    def one_task_job() -> None:
        insert = InsertJob(group, GRAPH, INPUTS, time.time(), started=True)
        job_id = JobId(cast(int, database.write_batch([insert]).outcomes[0].unwrap()))
        end = TransitionJob(job_id, JobState.SUCCEEDED, time.time(), OUTPUTS, None, RECORDS)
        database.write_batch([end]).outcomes[0].unwrap()

    def outputs_batch() -> None:
        writes = [RecordTaskOutputs(outputs_job, next(task_indexes), OUTPUTS) for _ in range(BATCH)]
        assert database.write_batch(writes).written == BATCH

    return {"one-task job": one_task_job, f"batch of {BATCH} outputs": outputs_batch}


def built_per_call(database: SqliteDatabase, group: ResourceGroupId) -> dict[str, Operation]:
    """The same writes with Core statements built per call and ``begin_nested`` savepoints."""
    engine: sa.Engine = database._engine
    jobs = schema.jobs
    outputs_job = database.insert_job(group, GRAPH, INPUTS, time.time(), started=True)
    task_indexes = itertools.count()

    def transaction() -> sa.Connection:
        conn = engine.connect()
        conn.execution_options(**{WRITES_OPTION: True})  # BEGIN IMMEDIATE, as storage
        return conn

    def one_task_job() -> None:
        now = time.time()
        with transaction() as conn, conn.begin():
            values = {
                "resource_group_id": group,
                "state": JobState.RUNNING,
                "compressed_serialized_task_graph": GRAPH,
                "compressed_serialized_job_inputs": INPUTS,
                "created_at": now,
                "updated_at": now,
            }
            key = conn.execute(jobs.insert().values(**values)).inserted_primary_key
            assert key is not None
            job_id = JobId(key[0])
        with transaction() as conn, conn.begin():
            lock = sa.select(jobs.c.state).where(jobs.c.id == job_id).with_for_update()
            assert conn.execute(lock).scalar_one() is JobState.RUNNING
            changes = {
                "state": JobState.SUCCEEDED,
                "updated_at": now,
                "ended_at": now,
                "serialized_job_outputs": OUTPUTS,
            }
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(changes))
            records = database.insert_unless_present(schema.task_records)
            conn.execute(records.values(job_id=job_id, records=RECORDS))

    def outputs_batch() -> None:
        with transaction() as conn, conn.begin():
            for _ in range(BATCH):
                with conn.begin_nested():
                    insert = database.insert_unless_present(schema.task_outputs)
                    conn.execute(
                        insert.values(
                            job_id=outputs_job,
                            task_index=next(task_indexes),
                            output_frame=OUTPUTS,
                        )
                    )

    return {"one-task job": one_task_job, f"batch of {BATCH} outputs": outputs_batch}


def bare_driver(path: Path, group: ResourceGroupId) -> dict[str, Operation]:
    """The same SQL on the ``sqlite3`` driver alone, with storage's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    task_indexes = itertools.count()
    created = "2026-01-01 00:00:00.000000"
    outputs_job = conn.execute(
        "INSERT INTO jobs (resource_group_id, state, compressed_serialized_task_graph, "
        "compressed_serialized_job_inputs, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (group, "Running", GRAPH, INPUTS, created, created),
    ).lastrowid

    def one_task_job() -> None:
        conn.execute("BEGIN IMMEDIATE")
        job_id = conn.execute(
            "INSERT INTO jobs (resource_group_id, state, compressed_serialized_task_graph, "
            "compressed_serialized_job_inputs, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (group, "Running", GRAPH, INPUTS, created, created),
        ).lastrowid
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        conn.execute(
            "UPDATE jobs SET state = ?, serialized_job_outputs = ?, updated_at = ?, "
            "ended_at = ? WHERE id = ?",
            ("Succeeded", OUTPUTS, created, created, job_id),
        )
        conn.execute(
            "INSERT INTO task_records (job_id, records) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (job_id, RECORDS),
        )
        conn.execute("COMMIT")

    def outputs_batch() -> None:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(BATCH):
            conn.execute("SAVEPOINT w")
            conn.execute(
                "INSERT INTO task_outputs (job_id, task_index, output_frame) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (outputs_job, next(task_indexes), OUTPUTS),
            )
            conn.execute("RELEASE SAVEPOINT w")
        conn.execute("COMMIT")

    return {"one-task job": one_task_job, f"batch of {BATCH} outputs": outputs_batch}


def best(operation: Operation, number: int, repeats: int) -> tuple[float, float]:
    """The best (CPU, wall) milliseconds per call over ``repeats`` runs of ``number`` calls."""
    for _ in range(max(1, number // 10)):  # warm: caches, pool, file
        operation()
    cpu = wall = float("inf")
    for _ in range(repeats):
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        for _ in range(number):
            operation()
        cpu = min(cpu, (time.thread_time() - cpu_start) / number * 1000)
        wall = min(wall, (time.perf_counter() - wall_start) / number * 1000)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=300, help="operations per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storage_writes_") as directory:
        path = Path(directory) / "storage.db"
        database = SqliteDatabase(path)
        database.create_schema()
        group = database.add_resource_group("bench", b"")
        systems = {
            "storage (compiled once)": shipped(database, group),
            "Core, built per call": built_per_call(database, group),
            "sqlite3 alone": bare_driver(path, group),
        }
        baseline = "Core, built per call"
        results = {
            (system, name): best(operation, args.number, args.repeats)
            for system, operations in systems.items()
            for name, operation in operations.items()
        }
        database.close()
    print(f"CPU and wall ms per operation on SQLite, best of {args.repeats} x {args.number}\n")
    print("| operation | writes as | CPU ms | wall ms | CPU / built per call |")
    print("|---|---|---|---|---|")
    for name in systems[baseline]:
        for system in systems:
            cpu, wall = results[system, name]
            ratio = cpu / results[baseline, name][0]
            print(f"| {name} | {system} | {cpu:.3f} | {wall:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
