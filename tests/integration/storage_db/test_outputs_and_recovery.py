"""Finished task outputs, the recoverable-jobs scan, and blobs of realistic size."""

from __future__ import annotations

import random

import pytest

from spider.core.ids import ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import RECOVERABLE_STATES, StorageDatabase

from .storage_helpers import INPUTS, NOW, add_job

LARGE_GRAPH_BYTES = 20 * 1024 * 1024
LARGE_OUTPUT_BYTES = 2 * 1024 * 1024


def test_task_outputs_are_loaded_by_job_and_task_index(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job, other_job = add_job(storage_database, group), add_job(storage_database, group)
    frames = {0: b"\x01\x00\x00\x00\x01\x00\x00\x00\x0a", 7: b"\x00\x00\x00\x00", 2**40: b"\xff"}
    for task_index, frame in frames.items():
        storage_database.record_task_outputs(job, task_index, frame)
    storage_database.record_task_outputs(other_job, 0, b"other")

    assert storage_database.load_task_outputs(job) == frames
    assert storage_database.load_task_outputs(other_job) == {0: b"other"}


def test_a_job_without_task_outputs_has_none(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    assert storage_database.load_task_outputs(add_job(storage_database, group)) == {}


def test_the_first_task_output_write_wins(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job = add_job(storage_database, group, JobState.RUNNING)

    storage_database.record_task_outputs(job, 3, b"first")
    storage_database.record_task_outputs(job, 3, b"second, from a duplicate report")

    assert storage_database.load_task_outputs(job) == {3: b"first"}


def test_recoverable_jobs_are_the_four_live_states_in_id_order_with_blobs_verbatim(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    rng = random.Random(0)
    expected = {}
    # More jobs than one page of the scan, in every state, interleaved.
    for round_ in range(6):
        for state in JobState:
            graph = rng.randbytes(rng.randrange(0, 300))
            job_id = add_job(storage_database, group, state, now=NOW + round_, graph=graph)
            if state in RECOVERABLE_STATES:
                expected[job_id] = (state, graph, NOW + round_)

    records = list(storage_database.iter_recoverable_jobs())

    assert [record.id for record in records] == sorted(expected)
    for record in records:
        state, graph, created_at = expected[record.id]
        assert (record.state, record.compressed_task_graph, record.created_at) == (
            state,
            graph,
            created_at,
        )
        assert record.compressed_inputs == INPUTS
        assert record.resource_group_id == group


def test_recoverable_commit_ready_jobs_carry_their_outputs(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job = add_job(storage_database, group, JobState.RUNNING)
    storage_database.transition_job(job, JobState.COMMIT_READY, NOW, serialized_outputs=b"\x00out")
    failing = add_job(storage_database, group, JobState.CLEANUP_READY)

    records = {record.id: record for record in storage_database.iter_recoverable_jobs()}

    assert records[job].serialized_outputs == b"\x00out"
    assert records[failing].serialized_outputs is None


def test_times_are_kept_to_the_microsecond(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    now = 1_712_345_678.123456
    storage_database.insert_job(group, b"g", b"i", now)

    (record,) = storage_database.iter_recoverable_jobs()

    assert record.created_at == pytest.approx(now, abs=1e-6)


def test_a_twenty_megabyte_graph_and_large_outputs_round_trip(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    rng = random.Random(1)
    graph = rng.randbytes(LARGE_GRAPH_BYTES)
    outputs = rng.randbytes(LARGE_OUTPUT_BYTES)
    frame = rng.randbytes(LARGE_OUTPUT_BYTES)
    job = storage_database.insert_job(group, graph, INPUTS, NOW)
    storage_database.transition_job(job, JobState.RUNNING, NOW)
    storage_database.record_task_outputs(job, 0, frame)
    storage_database.transition_job(job, JobState.COMMIT_READY, NOW, serialized_outputs=outputs)

    (record,) = storage_database.iter_recoverable_jobs()
    assert record.compressed_task_graph == graph
    assert record.serialized_outputs == outputs
    assert storage_database.load_task_outputs(job) == {0: frame}
