"""Jobs as clients see them: register, start, cancel, state, outputs and error.

Mirrors upstream's ``state/service.rs`` job tests, plus the bad-timing requests of the storage
issue, which upstream answered with INTERNAL or by crashing: each gets its status code here and
leaves the job as it was.
"""

from __future__ import annotations

import pytest
import trio

from spider.core.compression import compress
from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph, encode_task_graph
from spider.core.task_id import TaskId
from spider.core.wire import EMPTY_FRAME
from spider.rpc.errors import Status
from spider.storage import (
    BadRequest,
    CacheStale,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    Lane,
    StaleReason,
    StorageState,
    grpc_status,
)

from .fake_database import FakeDatabase
from .jobs import (
    create_state,
    decode_job_outputs,
    diamond,
    drain,
    flat,
    frame_of,
    new_group,
    outputs_for,
    reference_job_outputs,
    submission,
    summing_task,
    termination,
)


async def registered(
    database: FakeDatabase, graph: TaskGraph | None = None, inputs: list[int] | None = None
) -> tuple[StorageState, JobId]:
    state = await create_state(database)
    graph = graph if graph is not None else diamond()
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, inputs if inputs is not None else [1, 2])
    )
    return state, job_id


def one_task(*, commit: bool = False, cleanup: bool = False) -> TaskGraph:
    graph = TaskGraph(
        commit_task=termination("commit") if commit else None,
        cleanup_task=termination("cleanup") if cleanup else None,
    )
    graph.insert_task(summing_task(1, 1))
    return graph


async def run_one_task(state: StorageState, job_id: JobId, graph: TaskGraph) -> None:
    """Run the single ready task of ``job_id`` to success."""
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    (entry,) = await drain(state)
    context = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    await state.lifecycle.report_task_success(
        job_id,
        entry.task_id,
        context.task_instance_id,
        state.session,
        outputs_for(entry.task_id, context, graph),
    )


# --- RegisterJob ---------------------------------------------------------------------------


async def test_register_job_returns_job_id_and_inserts_into_cache() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    assert state.lifecycle.cache.get(job_id) is not None
    assert await state.lifecycle.get_job_state(job_id) is JobState.READY
    assert database.state_of(job_id) is JobState.READY
    assert await drain(state) == []


@pytest.mark.parametrize(
    ("graph_bytes", "inputs_bytes", "detail"),
    [
        (b"not zstd", compress(b"\x00\x00\x00\x00"), "invalid task graph"),
        (encode_task_graph(diamond()), compress(b"\x01\x00\x00\x00\x01\x00\x00\x00\x01"), "2"),
        (encode_task_graph(TaskGraph()), compress(EMPTY_FRAME), "the task graph is empty"),
    ],
    ids=["invalid_task_graph", "input_size_mismatch", "empty_task_graph"],
)
async def test_register_job_rejects_a_bad_submission(
    graph_bytes: bytes, inputs_bytes: bytes, detail: str
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    with pytest.raises(BadRequest, match=detail) as caught:
        await state.lifecycle.register_job(new_group(database), graph_bytes, inputs_bytes)
    assert str(caught.value).startswith("bad request: ")
    assert grpc_status(caught.value) is Status.INVALID_ARGUMENT
    assert database.jobs == {}
    assert len(state.lifecycle.cache) == 0


async def test_register_job_with_an_unknown_resource_group_is_unauthenticated() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    with pytest.raises(InvalidResourceGroup, match="resource group 99 does not exist") as caught:
        await state.lifecycle.register_job(ResourceGroupId(99), *submission(diamond(), [1, 2]))
    assert grpc_status(caught.value) is Status.UNAUTHENTICATED
    assert len(state.lifecycle.cache) == 0


# --- StartJob ------------------------------------------------------------------------------


async def test_start_job_starts_cached_job_and_enqueues_its_input_tasks() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    assert await state.lifecycle.start_job(job_id) is JobState.RUNNING
    assert database.state_of(job_id) is JobState.RUNNING
    assert [entry.task_id for entry in await drain(state)] == [TaskId.index(0)]


async def test_start_job_returns_job_not_found_for_an_unknown_job() -> None:
    state = await create_state(FakeDatabase())
    with pytest.raises(JobNotFound, match="job 7 not found") as caught:
        await state.lifecycle.start_job(JobId(7))
    assert grpc_status(caught.value) is Status.NOT_FOUND


async def test_start_job_twice_is_a_failed_precondition_and_changes_nothing() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.start_job(job_id)
    await drain(state)
    with pytest.raises(InvalidJobState) as caught:
        await state.lifecycle.start_job(job_id)
    assert str(caught.value) == f"job {job_id} is Running; StartJob needs Ready"
    assert grpc_status(caught.value) is Status.FAILED_PRECONDITION
    assert await state.lifecycle.get_job_state(job_id) is JobState.RUNNING
    assert await drain(state) == []


async def test_start_job_on_an_evicted_terminal_job_reports_its_state() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.cancel_job(job_id)
    state = await create_state(database)  # a restart: the Cancelled job is no longer cached
    with pytest.raises(InvalidJobState, match="is Cancelled; StartJob needs Ready"):
        await state.lifecycle.start_job(job_id)


# --- CancelJob -----------------------------------------------------------------------------


async def test_cancel_job_returns_job_not_found_if_it_does_not_exist() -> None:
    state = await create_state(FakeDatabase())
    with pytest.raises(JobNotFound):
        await state.lifecycle.cancel_job(JobId(3))


async def test_cancel_job_returns_the_terminal_state_from_the_db_when_not_cached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    assert await state.lifecycle.cancel_job(job_id) is JobState.CANCELLED
    await trio.sleep(10)
    assert await state.collector.collect() == ([job_id], 0)
    assert state.lifecycle.cache.get(job_id) is None
    assert await state.lifecycle.cancel_job(job_id) is JobState.CANCELLED
    assert database.state_of(job_id) is JobState.CANCELLED


async def test_cancel_running_job_without_cleanup_cancels_it_and_makes_instances_stale() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), em, state.session
    )
    assert await state.lifecycle.cancel_job(job_id) is JobState.CANCELLED
    assert database.state_of(job_id) is JobState.CANCELLED
    assert len(state.lifecycle.pool) == 0
    with pytest.raises(CacheStale) as caught:
        await state.lifecycle.report_task_success(
            job_id, TaskId.index(0), context.task_instance_id, state.session, frame_of(3)
        )
    assert caught.value.reason is StaleReason.JOB_ALREADY_TERMINATED


async def test_cancel_job_enqueues_terminal_job_for_cache_gc(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.cancel_job(job_id)
    await trio.sleep(9.5)
    assert await state.collector.collect() == ([], 0)
    await trio.sleep(0.5)
    assert await state.collector.collect() == ([job_id], 0)


async def test_cancel_never_started_job_with_cleanup_runs_the_cleanup() -> None:
    database = FakeDatabase()
    graph = one_task(cleanup=True)
    state, job_id = await registered(database, graph, [5])
    assert await state.lifecycle.cancel_job(job_id) is JobState.CLEANUP_READY
    assert database.state_of(job_id) is JobState.CLEANUP_READY
    assert await drain(state) == []
    (entry,) = await drain(state, Lane.CLEANUP)
    assert entry.task_id == TaskId.CLEANUP
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.CLEANUP, em, state.session
    )
    assert context.serialized_task_io == EMPTY_FRAME
    await state.lifecycle.report_task_success(
        job_id, TaskId.CLEANUP, context.task_instance_id, state.session, b""
    )
    assert await state.lifecycle.get_job_state(job_id) is JobState.CANCELLED
    assert database.state_of(job_id) is JobState.CANCELLED


async def test_cancel_is_idempotent() -> None:
    database = FakeDatabase()
    state, with_cleanup = await registered(database, one_task(cleanup=True), [1])
    assert await state.lifecycle.cancel_job(with_cleanup) is JobState.CLEANUP_READY
    assert await state.lifecycle.cancel_job(with_cleanup) is JobState.CLEANUP_READY
    assert len(await drain(state, Lane.CLEANUP)) == 1
    without = await state.lifecycle.register_job(
        new_group(database, "b"), *submission(one_task(), [1])
    )
    assert await state.lifecycle.cancel_job(without) is JobState.CANCELLED
    assert await state.lifecycle.cancel_job(without) is JobState.CANCELLED


async def test_cancel_commit_ready_job_with_cleanup_makes_the_commit_stale() -> None:
    database = FakeDatabase()
    graph = one_task(commit=True, cleanup=True)
    state, job_id = await registered(database, graph, [1])
    await state.lifecycle.start_job(job_id)
    await run_one_task(state, job_id, graph)
    assert await state.lifecycle.get_job_state(job_id) is JobState.COMMIT_READY
    em = (await state.register_execution_manager("10.0.0.2")).execution_manager_id
    commit = await state.lifecycle.register_task_instance(job_id, TaskId.COMMIT, em, state.session)
    assert await state.lifecycle.cancel_job(job_id) is JobState.CLEANUP_READY
    with pytest.raises(CacheStale) as caught:
        await state.lifecycle.report_task_success(
            job_id, TaskId.COMMIT, commit.task_instance_id, state.session, b""
        )
    assert caught.value.reason is StaleReason.JOB_NO_LONGER_COMMIT_READY
    assert [entry.task_id for entry in await drain(state, Lane.CLEANUP)] == [TaskId.CLEANUP]


async def test_cancel_commit_ready_job_without_cleanup_is_refused_and_changes_nothing() -> None:
    database = FakeDatabase()
    graph = one_task(commit=True)
    state, job_id = await registered(database, graph, [1])
    await state.lifecycle.start_job(job_id)
    await run_one_task(state, job_id, graph)
    with pytest.raises(InvalidJobState, match="CancelJob needs Ready or Running; every task") as c:
        await state.lifecycle.cancel_job(job_id)
    assert grpc_status(c.value) is Status.FAILED_PRECONDITION
    assert await state.lifecycle.get_job_state(job_id) is JobState.COMMIT_READY
    assert database.state_of(job_id) is JobState.COMMIT_READY
    assert [entry.task_id for entry in await drain(state, Lane.COMMIT)] == [TaskId.COMMIT]


# --- GetJobState / GetJobOutputs / GetJobError ----------------------------------------------


async def test_get_job_state_serves_from_the_cache_when_present() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    database.unavailable = True
    assert await state.lifecycle.get_job_state(job_id) is JobState.READY


async def test_get_job_state_falls_back_to_the_db_and_reports_unknown_jobs() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.cancel_job(job_id)
    restarted = await create_state(database)
    assert restarted.lifecycle.cache.get(job_id) is None
    assert await restarted.lifecycle.get_job_state(job_id) is JobState.CANCELLED
    with pytest.raises(JobNotFound):
        await restarted.lifecycle.get_job_state(JobId(12345))


async def test_get_job_outputs_from_the_cache_and_from_the_db() -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await registered(database, graph, [4])
    await state.lifecycle.start_job(job_id)
    await run_one_task(state, job_id, graph)
    cached = await state.lifecycle.get_job_outputs(job_id)
    assert decode_job_outputs(cached) == reference_job_outputs(graph, [4]) == [4]
    restarted = await create_state(database)
    assert await restarted.lifecycle.get_job_outputs(job_id) == cached
    with pytest.raises(JobNotFound):
        await restarted.lifecycle.get_job_outputs(JobId(999))


async def test_get_job_outputs_of_a_running_job_is_a_failed_precondition() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database)
    await state.lifecycle.start_job(job_id)
    with pytest.raises(InvalidJobState) as caught:
        await state.lifecycle.get_job_outputs(job_id)
    assert str(caught.value) == f"job {job_id} is Running; GetJobOutputs needs Succeeded"
    assert grpc_status(caught.value) is Status.FAILED_PRECONDITION
    assert await state.lifecycle.get_job_state(job_id) is JobState.RUNNING
    restarted = await create_state(database)
    with pytest.raises(InvalidJobState, match="is Running; GetJobOutputs needs Succeeded"):
        await restarted.lifecycle.get_job_outputs(job_id)


async def test_get_job_error_returns_the_failure_message() -> None:
    database = FakeDatabase()
    state, job_id = await registered(database, one_task(), [1])
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    context = await state.lifecycle.register_task_instance(
        job_id, TaskId.index(0), em, state.session
    )
    with pytest.raises(InvalidJobState, match="is Running; GetJobError needs Failed"):
        await state.lifecycle.get_job_error(job_id)
    await state.lifecycle.report_task_failure(
        job_id, TaskId.index(0), context.task_instance_id, state.session, "ValueError: x"
    )
    assert await state.lifecycle.get_job_error(job_id) == "ValueError: x"
    restarted = await create_state(database)
    assert await restarted.lifecycle.get_job_error(job_id) == "ValueError: x"
    with pytest.raises(JobNotFound):
        await restarted.lifecycle.get_job_error(JobId(4242))


async def test_a_succeeded_job_with_a_commit_task_passes_its_outputs_to_the_commit() -> None:
    database = FakeDatabase()
    graph = flat(3)
    state, job_id = await registered(database, graph, [1, 2, 3])
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    for entry in await drain(state):
        context = await state.lifecycle.register_task_instance(
            job_id, entry.task_id, em, state.session
        )
        await state.lifecycle.report_task_success(
            job_id,
            entry.task_id,
            context.task_instance_id,
            state.session,
            outputs_for(entry.task_id, context, graph),
        )
    assert database.state_of(job_id) is JobState.COMMIT_READY
    with pytest.raises(InvalidJobState, match="is CommitReady; GetJobOutputs needs Succeeded"):
        await state.lifecycle.get_job_outputs(job_id)
    (entry,) = await drain(state, Lane.COMMIT)
    commit = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    assert decode_job_outputs(commit.serialized_task_io) == [1, 12, 23]
    await state.lifecycle.report_task_success(
        job_id, TaskId.COMMIT, commit.task_instance_id, state.session, b"ignored"
    )
    assert database.state_of(job_id) is JobState.SUCCEEDED
    assert decode_job_outputs(await state.lifecycle.get_job_outputs(job_id)) == [1, 12, 23]
