"""``write_batch``: many writes, one transaction; each write's own failure stays its own.

Runs on both backends. A batch's savepoints must isolate a failing write (an unknown job, an
illegal transition, a dead EM) from its batch-mates, and a batch whose shared transaction
breaks must fall back to running each write alone.
"""

from __future__ import annotations

import outcome
import pytest

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import (
    ExecutionManagerDead,
    IllegalJobTransition,
    StorageDatabase,
    UnknownJob,
    UnknownResourceGroup,
)
from spider.storage.db._sql import SqlDatabase, TransactionConflict
from spider.storage.db.writes import (
    HeartbeatExecutionManager,
    InsertJob,
    RecordTaskOutputs,
    RegisterExecutionManager,
    TransitionJob,
    Write,
)

from .storage_helpers import GRAPH, INPUTS, NOW, add_job


def error_of(result: outcome.Outcome[object]) -> type[BaseException]:
    assert isinstance(result, outcome.Error), result
    return type(result.error)


def test_writes_share_one_transaction_and_a_failing_write_fails_alone(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    running = add_job(storage_database, group, JobState.RUNNING)
    ready = add_job(storage_database, group)
    dead_em = storage_database.register_execution_manager("10.0.0.9", NOW)
    assert storage_database.mark_dead_execution_managers(NOW + 1) == [dead_em]
    writes: list[Write] = [
        RecordTaskOutputs(running, 0, b"zero"),
        RecordTaskOutputs(JobId(10_000), 0, b"no such job"),
        InsertJob(group, GRAPH, INPUTS, NOW),
        InsertJob(ResourceGroupId(10_000), GRAPH, INPUTS, NOW),
        TransitionJob(ready, JobState.SUCCEEDED, NOW),  # Ready -> Succeeded is illegal
        TransitionJob(running, JobState.COMMIT_READY, NOW, serialized_outputs=b"outputs"),
        RegisterExecutionManager("10.0.0.1", NOW),
        HeartbeatExecutionManager(dead_em, NOW),
        RecordTaskOutputs(running, 1, b"one"),
    ]

    batch = storage_database.write_batch(writes)

    assert batch.transactions == 1
    assert batch.written == 5
    record, missing_job, insert, bad_group, illegal, moved, em, dead, record_again = batch.outcomes
    assert record == outcome.Value(None)
    assert record_again == outcome.Value(None)
    assert error_of(missing_job) is UnknownJob
    assert error_of(bad_group) is UnknownResourceGroup
    assert error_of(illegal) is IllegalJobTransition
    assert error_of(dead) is ExecutionManagerDead
    assert moved == outcome.Value(JobState.RUNNING)
    assert isinstance(insert, outcome.Value)
    assert storage_database.get_job_status(insert.unwrap()).state is JobState.READY
    assert isinstance(em, outcome.Value)
    assert storage_database.is_execution_manager_alive(em.unwrap())
    assert storage_database.load_task_outputs(running) == {0: b"zero", 1: b"one"}
    assert storage_database.get_job_outputs(running) == (JobState.COMMIT_READY, b"outputs")
    assert storage_database.get_job_status(ready).state is JobState.READY


def test_later_writes_in_a_batch_see_earlier_ones(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job = add_job(storage_database, group)
    batch = storage_database.write_batch(
        [
            TransitionJob(job, JobState.RUNNING, NOW),
            TransitionJob(job, JobState.RUNNING, NOW),  # now illegal: it is Running
            TransitionJob(job, JobState.FAILED, NOW, error_message="boom"),
        ]
    )
    assert [type(result) for result in batch.outcomes] == [
        outcome.Value,
        outcome.Error,
        outcome.Value,
    ]
    assert storage_database.get_job_status(job).error_message == "boom"


def test_a_started_insert_is_one_write_of_a_running_job_in_a_batch_or_alone(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    # SubmitJob's register-and-start: one record, so one write whichever way it is committed.
    batch = storage_database.write_batch(
        [
            InsertJob(group, GRAPH, INPUTS, NOW, started=True),
            InsertJob(group, GRAPH, INPUTS, NOW),
        ]
    )
    assert batch.transactions == 1
    assert batch.written == 2
    started, registered = batch.outcomes
    assert isinstance(started, outcome.Value)
    assert isinstance(registered, outcome.Value)
    assert storage_database.get_job_status(started.unwrap()).state is JobState.RUNNING
    assert storage_database.get_job_status(registered.unwrap()).state is JobState.READY
    alone = InsertJob(group, GRAPH, INPUTS, NOW, started=True).apply_alone(storage_database)
    assert storage_database.get_job_status(alone).state is JobState.RUNNING


def test_a_broken_shared_transaction_runs_each_write_alone(
    storage_database: StorageDatabase, group: ResourceGroupId, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(storage_database, SqlDatabase)
    job = add_job(storage_database, group, JobState.RUNNING)
    applied = SqlDatabase._apply
    conflicts: list[Write] = []

    def deadlocked_once(self: SqlDatabase, conn: object, write: Write) -> object:
        if isinstance(write, RecordTaskOutputs) and write.task_index == 2 and not conflicts:
            conflicts.append(write)
            raise TransactionConflict("deadlock (injected): the transaction was rolled back")
        return applied(self, conn, write)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlDatabase, "_apply", deadlocked_once)
    batch = storage_database.write_batch(
        [RecordTaskOutputs(job, index, bytes([index])) for index in range(4)]
        + [HeartbeatExecutionManager(ExecutionManagerId(10_000), NOW)]
    )

    assert conflicts  # the shared transaction broke, so every write ran again alone
    assert batch.transactions == 4
    assert [type(result) for result in batch.outcomes] == [outcome.Value] * 4 + [outcome.Error]
    assert storage_database.load_task_outputs(job) == {i: bytes([i]) for i in range(4)}
