"""Jobs: insert, state transitions (Spider's table plus Ready -> CleanupReady), reads, retention.

Mirrors upstream's mariadb_test.rs job cases; every test runs on SQLite and on MariaDB.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import (
    LEGAL_TRANSITIONS,
    DatabaseConfig,
    IllegalJobTransition,
    StorageDatabase,
    UnknownJob,
    UnknownResourceGroup,
)

from .storage_helpers import GRAPH, INPUTS, NOW, OUTPUTS, add_job, execute_raw

MISSING_JOB = JobId(987_654)


def test_inserted_job_is_ready_with_its_blobs_verbatim(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = storage_database.insert_job(group, GRAPH, INPUTS, NOW)

    status = storage_database.get_job_status(job_id)
    assert (status.id, status.state, status.error_message) == (job_id, JobState.READY, None)
    assert storage_database.get_job_outputs(job_id) == (JobState.READY, None)
    (record,) = storage_database.iter_recoverable_jobs()
    assert record.id == job_id
    assert record.resource_group_id == group
    assert record.compressed_task_graph == GRAPH
    assert record.compressed_inputs == INPUTS
    assert (record.created_at, record.ended_at) == (NOW, None)


def test_job_ids_increase_and_are_never_reused_after_deletion(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    first = add_job(storage_database, group)
    newest = add_job(storage_database, group, JobState.CANCELLED)
    assert newest > first
    assert storage_database.delete_terminated_jobs(NOW + 1) == 1

    assert add_job(storage_database, group) > newest


def test_insert_job_into_an_unknown_resource_group_fails(
    storage_database: StorageDatabase,
) -> None:
    with pytest.raises(UnknownResourceGroup, match="resource group 4242 does not exist"):
        storage_database.insert_job(ResourceGroupId(4242), GRAPH, INPUTS, NOW)


def test_every_legal_transition_moves_the_job_and_returns_the_previous_state(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    for target, sources in LEGAL_TRANSITIONS.items():
        for source in sources:
            job_id = add_job(storage_database, group, source)

            previous = storage_database.transition_job(job_id, target, NOW + 1)

            assert previous is source, (source, target)
            assert storage_database.get_job_status(job_id).state is target, (source, target)


def test_every_illegal_transition_fails_and_leaves_the_job_unchanged(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    jobs = {state: add_job(storage_database, group, state) for state in JobState}
    for source, target in itertools.product(JobState, JobState):
        if source in LEGAL_TRANSITIONS[target]:
            continue
        with pytest.raises(IllegalJobTransition) as raised:
            storage_database.transition_job(
                jobs[source], target, NOW + 1, serialized_outputs=b"x", error_message="x"
            )
        assert (raised.value.current, raised.value.target) == (source, target)
        assert storage_database.get_job_status(jobs[source]).state is source
        assert storage_database.get_job_status(jobs[source]).error_message is None


def test_starting_twice_is_illegal(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group, JobState.RUNNING)

    with pytest.raises(IllegalJobTransition, match="in state Running cannot move to Running"):
        storage_database.transition_job(job_id, JobState.RUNNING, NOW)


def test_cancelling_a_ready_job_with_a_cleanup_task_is_legal(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group)

    assert storage_database.transition_job(job_id, JobState.CLEANUP_READY, NOW) is JobState.READY
    assert storage_database.transition_job(job_id, JobState.CANCELLED, NOW) is (
        JobState.CLEANUP_READY
    )


def test_cancelling_a_cancelled_job_reports_cancelled_to_cancelled(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group, JobState.CANCELLED)

    with pytest.raises(IllegalJobTransition) as raised:
        storage_database.transition_job(job_id, JobState.CANCELLED, NOW)
    assert (raised.value.job_id, raised.value.current, raised.value.target) == (
        job_id,
        JobState.CANCELLED,
        JobState.CANCELLED,
    )


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((JobState.RUNNING,), JobState.COMMIT_READY),
        ((JobState.RUNNING,), JobState.SUCCEEDED),
        ((JobState.RUNNING, JobState.COMMIT_READY), JobState.SUCCEEDED),
    ],
)
def test_outputs_are_stored_with_the_transition(
    storage_database: StorageDatabase,
    group: ResourceGroupId,
    path: tuple[JobState, ...],
    target: JobState,
) -> None:
    job_id = add_job(storage_database, group)
    for step in path:
        storage_database.transition_job(job_id, step, NOW)

    storage_database.transition_job(job_id, target, NOW, serialized_outputs=OUTPUTS)

    assert storage_database.get_job_outputs(job_id) == (target, OUTPUTS)


def test_commit_keeps_the_outputs_stored_on_commit_ready(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group, JobState.RUNNING)
    storage_database.transition_job(job_id, JobState.COMMIT_READY, NOW, serialized_outputs=OUTPUTS)

    storage_database.transition_job(job_id, JobState.SUCCEEDED, NOW)

    assert storage_database.get_job_outputs(job_id) == (JobState.SUCCEEDED, OUTPUTS)


def test_failure_stores_the_error_message(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group, JobState.CLEANUP_READY)
    message = "cleanup task failed: ValueError: d\u00e9j\u00e0 vu \U0001f4a5 " + "x" * 70_000

    storage_database.transition_job(job_id, JobState.FAILED, NOW, error_message=message)

    status = storage_database.get_job_status(job_id)
    assert (status.state, status.error_message) == (JobState.FAILED, message)
    assert storage_database.get_job_outputs(job_id) == (JobState.FAILED, None)


@pytest.mark.parametrize("terminal", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_a_terminal_transition_records_when_the_job_ended(
    storage_database: StorageDatabase, group: ResourceGroupId, terminal: JobState
) -> None:
    job_id = add_job(storage_database, group, terminal, now=NOW)

    # ended_at == NOW: not "before NOW", but before anything later.
    assert storage_database.delete_terminated_jobs(ended_before=NOW) == 0
    assert storage_database.delete_terminated_jobs(ended_before=NOW + 0.001) == 1
    with pytest.raises(UnknownJob):
        storage_database.get_job_status(job_id)


def test_non_terminal_transitions_leave_ended_at_unset(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    for state in (JobState.RUNNING, JobState.COMMIT_READY, JobState.CLEANUP_READY):
        add_job(storage_database, group, state)

    assert [record.ended_at for record in storage_database.iter_recoverable_jobs()] == [None] * 3
    assert storage_database.delete_terminated_jobs(ended_before=NOW + 1e9) == 0


def test_every_job_method_reports_a_missing_job(storage_database: StorageDatabase) -> None:
    calls: list[Callable[[], object]] = [
        lambda: storage_database.get_job_status(MISSING_JOB),
        lambda: storage_database.get_job_outputs(MISSING_JOB),
        lambda: storage_database.transition_job(MISSING_JOB, JobState.RUNNING, NOW),
        lambda: storage_database.transition_job(MISSING_JOB, JobState.CANCELLED, NOW),
        lambda: storage_database.record_task_outputs(MISSING_JOB, 0, b"frame"),
        lambda: storage_database.load_task_outputs(MISSING_JOB),
    ]
    for call in calls:
        with pytest.raises(UnknownJob, match=f"job {MISSING_JOB} does not exist"):
            call()


def test_delete_terminated_jobs_deletes_only_terminal_jobs_that_ended_before_the_cutoff(
    storage_database: StorageDatabase, storage_config: DatabaseConfig, group: ResourceGroupId
) -> None:
    old = {state: add_job(storage_database, group, state, now=NOW) for state in JobState}
    recent = add_job(storage_database, group, JobState.SUCCEEDED, now=NOW + 10)
    for task_index in range(3):
        storage_database.record_task_outputs(old[JobState.FAILED], task_index, b"frame")
    storage_database.record_task_outputs(recent, 0, b"frame")

    deleted = storage_database.delete_terminated_jobs(ended_before=NOW + 5, batch=2)

    assert deleted == 3
    for state, job_id in old.items():
        if state.is_terminal:
            with pytest.raises(UnknownJob):
                storage_database.get_job_status(job_id)
        else:
            assert storage_database.get_job_status(job_id).state is state
    assert storage_database.get_job_status(recent).state is JobState.SUCCEEDED
    # The deleted job's task outputs went with it (ON DELETE CASCADE).
    assert execute_raw(storage_config, "SELECT job_id FROM task_outputs") == [(recent,)]


def test_delete_terminated_jobs_without_matches_deletes_nothing(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job_id = add_job(storage_database, group, JobState.SUCCEEDED, now=NOW)

    assert storage_database.delete_terminated_jobs(ended_before=NOW - 1) == 0
    assert storage_database.get_job_status(job_id).state is JobState.SUCCEEDED


def test_delete_terminated_jobs_rejects_an_empty_batch(storage_database: StorageDatabase) -> None:
    with pytest.raises(ValueError, match="batch must be at least 1"):
        storage_database.delete_terminated_jobs(NOW, batch=0)
