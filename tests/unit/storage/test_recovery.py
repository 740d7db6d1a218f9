"""Recovery after a storage restart: what comes back, what resumes, what is failed and why.

Mirrors upstream's ``runtime_recovery_test.rs`` (Ready, Running, CommitReady and CleanupReady
jobs recovered; after the restart a regular registration on a CommitReady or CleanupReady job is
stale) and pins the differences: a Running job resumes from its persisted task outputs, and an
unrecoverable row is marked Failed with a reason instead of aborting startup.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from spider.core.compression import compress
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.core.wire import encode_frame
from spider.storage import CacheStale, Lane, StaleReason, StaleSession, StorageUnavailable

from .fake_database import FakeDatabase
from .jobs import (
    SimulatedEm,
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


def one_task(*, commit: bool = False, cleanup: bool = False) -> TaskGraph:
    graph = TaskGraph(
        commit_task=termination("commit") if commit else None,
        cleanup_task=termination("cleanup") if cleanup else None,
    )
    graph.insert_task(summing_task(1, 1))
    return graph


async def test_a_ready_job_is_recovered_and_still_needs_start_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph = one_task()
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [4]))
    restarted = await create_state(database)
    assert restarted.session == state.session + 1
    assert restarted.recovery.recovered == {JobState.READY: 1}
    assert restarted.lifecycle.resend_ready_work() == 0
    await restarted.lifecycle.start_job(job_id)
    em = (await restarted.register_execution_manager("10.0.0.1")).execution_manager_id
    assert await SimulatedEm(restarted, graph, em).run_job(job_id) is JobState.SUCCEEDED
    again = await create_state(database)
    assert decode_job_outputs(await again.lifecycle.get_job_outputs(job_id)) == [4]


async def test_a_running_job_is_recovered_from_the_start_when_nothing_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph = one_task()
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [4]))
    await state.lifecycle.start_job(job_id)
    restarted = await create_state(database)
    assert await drain(restarted) == []  # nothing is enqueued before the service serves
    assert restarted.lifecycle.resend_ready_work() == 1
    assert restarted.lifecycle.queue.depth(Lane.TASK) == 1
    em = (await restarted.register_execution_manager("10.0.0.1")).execution_manager_id
    assert await SimulatedEm(restarted, graph, em).run_job(job_id) is JobState.SUCCEEDED


async def test_a_running_job_resumes_from_its_persisted_task_outputs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph = diamond()
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [3, 4]))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    a = await state.lifecycle.register_task_instance(job_id, TaskId.index(0), em, state.session)
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(0), a.task_instance_id, state.session, frame_of(7)
    )
    b = await state.lifecycle.register_task_instance(job_id, TaskId.index(1), em, state.session)
    await state.lifecycle.report_task_success(
        job_id, TaskId.index(1), b.task_instance_id, state.session, frame_of(17)
    )
    c = await state.lifecycle.register_task_instance(job_id, TaskId.index(2), em, state.session)

    restarted = await create_state(database)
    jcb = restarted.lifecycle.cache.get(job_id)
    assert jcb is not None
    assert jcb.dataflow is not None
    assert [tcb.state for tcb in jcb.dataflow.tasks] == [
        TaskState.SUCCEEDED,
        TaskState.SUCCEEDED,
        TaskState.READY,
        TaskState.PENDING,
    ]
    assert jcb.dataflow.waiting_on[3] == 1
    assert jcb.dataflow.unfinished == 2
    with pytest.raises(StaleSession):
        await restarted.lifecycle.report_task_success(
            job_id, TaskId.index(2), c.task_instance_id, state.session, frame_of(27)
        )
    restarted.lifecycle.resend_ready_work()
    assert [entry.task_id for entry in await drain(restarted)] == [TaskId.index(2)]
    em = (await restarted.register_execution_manager("10.0.0.1")).execution_manager_id
    c = await restarted.lifecycle.register_task_instance(
        job_id, TaskId.index(2), em, restarted.session
    )
    assert c.serialized_task_io == frame_of(7)  # read from the recovered slot of task 0
    simulated = SimulatedEm(restarted, graph, em)
    restarted.lifecycle.queue.put(jcb.resource_group_id, job_id, TaskId.index(2))
    await restarted.lifecycle.report_task_success(
        job_id, TaskId.index(2), c.task_instance_id, restarted.session, frame_of(27)
    )
    assert await simulated.run_job(job_id) is JobState.SUCCEEDED
    assert set(simulated.successes) == {TaskId.index(3)}  # nothing finished ran again
    outputs = decode_job_outputs(await restarted.lifecycle.get_job_outputs(job_id))
    assert outputs == reference_job_outputs(graph, [3, 4])


async def test_a_commit_ready_job_is_recovered_and_only_its_commit_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph = one_task(commit=True)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [9]))
    await state.lifecycle.start_job(job_id)
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
    stored = database.jobs[job_id].serialized_outputs

    restarted = await create_state(database)
    assert restarted.recovery.recovered == {JobState.COMMIT_READY: 1}
    restarted.lifecycle.resend_ready_work()
    assert await drain(restarted) == []
    assert [e.task_id for e in await drain(restarted, Lane.COMMIT)] == [TaskId.COMMIT]
    em = (await restarted.register_execution_manager("10.0.0.1")).execution_manager_id
    with pytest.raises(CacheStale) as caught:
        await restarted.lifecycle.register_task_instance(
            job_id, TaskId.index(0), em, restarted.session
        )
    assert caught.value.reason is StaleReason.JOB_NO_LONGER_RUNNING
    commit = await restarted.lifecycle.register_task_instance(
        job_id, TaskId.COMMIT, em, restarted.session
    )
    assert commit.serialized_task_io == stored
    await restarted.lifecycle.report_task_success(
        job_id, TaskId.COMMIT, commit.task_instance_id, restarted.session, b""
    )
    assert database.state_of(job_id) is JobState.SUCCEEDED
    again = await create_state(database)
    assert await again.lifecycle.get_job_outputs(job_id) == stored
    assert decode_job_outputs(stored or b"") == [9]


async def test_a_cleanup_ready_job_is_recovered_and_only_its_cleanup_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(one_task(cleanup=True), [1])
    )
    await state.lifecycle.start_job(job_id)
    await state.lifecycle.cancel_job(job_id)
    restarted = await create_state(database)
    restarted.lifecycle.resend_ready_work()
    assert [e.task_id for e in await drain(restarted, Lane.CLEANUP)] == [TaskId.CLEANUP]
    em = (await restarted.register_execution_manager("10.0.0.1")).execution_manager_id
    with pytest.raises(CacheStale):
        await restarted.lifecycle.register_task_instance(
            job_id, TaskId.index(0), em, restarted.session
        )
    cleanup = await restarted.lifecycle.register_task_instance(
        job_id, TaskId.CLEANUP, em, restarted.session
    )
    await restarted.lifecycle.report_task_success(
        job_id, TaskId.CLEANUP, cleanup.task_instance_id, restarted.session, b""
    )
    assert database.state_of(job_id) is JobState.CANCELLED


async def test_a_running_job_whose_tasks_all_finished_is_completed_at_recovery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph = flat(2)  # with a commit task
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [1, 2]))
    await state.lifecycle.start_job(job_id)
    database.task_outputs[job_id] = {0: frame_of(1), 1: frame_of(12)}
    restarted = await create_state(database)
    assert restarted.recovery.completed == (job_id,)
    assert database.state_of(job_id) is JobState.COMMIT_READY
    assert decode_job_outputs(database.jobs[job_id].serialized_outputs or b"") == [1, 12]
    restarted.lifecycle.resend_ready_work()
    assert [e.task_id for e in await drain(restarted, Lane.COMMIT)] == [TaskId.COMMIT]


async def test_unrecoverable_rows_are_marked_failed_with_a_reason_and_recovery_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    group = new_group(database)
    good = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
    corrupt_graph = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
    no_outputs = await state.lifecycle.register_job(group, *submission(one_task(commit=True), [1]))
    no_cleanup = await state.lifecycle.register_job(group, *submission(one_task(), [1]))
    bad_task_outputs = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
    corrupt_ready = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
    for job_id in (corrupt_graph, bad_task_outputs):
        await state.lifecycle.start_job(job_id)

    def tamper(job_id: JobId, **changes: Any) -> None:
        database.jobs[job_id] = attrs.evolve(database.jobs[job_id], **changes)

    tamper(corrupt_graph, compressed_task_graph=compress(b'{"schema_version": "9.9.9"}'))
    tamper(corrupt_ready, compressed_task_graph=b"garbage")
    tamper(no_outputs, state=JobState.COMMIT_READY)
    tamper(no_cleanup, state=JobState.CLEANUP_READY)
    database.task_outputs[bad_task_outputs] = {0: encode_frame([])}

    restarted = await create_state(database)
    assert restarted.recovery.recovered == {JobState.READY: 1}
    assert restarted.lifecycle.cache.get(good) is not None
    reasons = dict(restarted.recovery.failed)
    assert "stored task graph or inputs are invalid" in reasons[corrupt_graph]
    assert reasons[no_outputs] == "it is CommitReady but no job outputs are stored"
    assert reasons[no_cleanup] == "it is CleanupReady but its task graph has no cleanup task"
    assert "stored outputs of task 0 are invalid" in reasons[bad_task_outputs]
    for job_id in (corrupt_graph, no_outputs, no_cleanup, bad_task_outputs):
        assert database.state_of(job_id) is JobState.FAILED
        message = await restarted.lifecycle.get_job_error(job_id)
        assert message == f"storage could not recover this job after a restart: {reasons[job_id]}"
    # Ready -> Failed is one of our transitions: a never-started job is failed with its reason.
    assert database.state_of(corrupt_ready) is JobState.FAILED
    assert (database.jobs[corrupt_ready].error_message or "").startswith("storage could not")


async def test_a_db_outage_during_recovery_fails_startup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    database.fail_once["iter_recoverable_jobs"] = 1
    with pytest.raises(StorageUnavailable, match="iter_recoverable_jobs"):
        await create_state(database)
