"""Spider-py's jobs extension in storage: SubmitJob in one write, WaitForJob's long poll."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio

from spider.core.compression import decompress
from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.rpc.errors import Status
from spider.storage import (
    BadRequest,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    Lane,
    StorageState,
    StorageUnavailable,
    grpc_status,
)
from spider.storage.config import StorageRuntimeConfig
from spider.storage.job_lifecycle import INLINE_DECODE_BYTES, JobOutcome
from spider.storage.persistence import Persistence

from .fake_database import FakeDatabase
from .jobs import (
    create_state,
    decode_job_outputs,
    diamond,
    drain,
    flat,
    new_group,
    outputs_for,
    storage_config,
    submission,
    summing_task,
    termination,
)


def one_task(*, cleanup: bool = False) -> TaskGraph:
    graph = TaskGraph(cleanup_task=termination("cleanup") if cleanup else None)
    graph.insert_task(summing_task(1, 1))
    return graph


async def submitted(
    database: FakeDatabase, graph: TaskGraph, inputs: list[int], *, start: bool = True
) -> tuple[StorageState, JobId]:
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, inputs), start=start
    )
    return state, job_id


async def run_task(state: StorageState, job_id: JobId, graph: TaskGraph, *, fail: bool) -> None:
    """Register and report the single ready task of ``job_id``."""
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    (entry,) = await drain(state)
    context = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    if fail:
        await state.lifecycle.report_task_failure(
            job_id, entry.task_id, context.task_instance_id, state.session, "boom"
        )
    else:
        await state.lifecycle.report_task_success(
            job_id,
            entry.task_id,
            context.task_instance_id,
            state.session,
            outputs_for(entry.task_id, context, graph),
        )


# --- SubmitJob -----------------------------------------------------------------------------


async def test_submit_and_start_is_one_write_and_enqueues_the_input_tasks() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    counters = state.persistence.counters
    before = (counters.transactions, counters.writes)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(diamond(), [1, 2]), start=True
    )
    # One write record through the group commit, committed in one transaction.
    assert (counters.transactions, counters.writes) == (before[0] + 1, before[1] + 1)
    assert database.calls["insert_job"] == 1
    assert database.calls["transition_job"] == 0  # started in the insert's transaction
    assert database.state_of(job_id) is JobState.RUNNING
    assert await state.lifecycle.get_job_state(job_id) is JobState.RUNNING
    assert [entry.task_id for entry in await drain(state)] == [TaskId.index(0)]
    with pytest.raises(InvalidJobState, match="is Running; StartJob needs Ready"):
        await state.lifecycle.start_job(job_id)


async def test_submit_without_start_is_register_job() -> None:
    database = FakeDatabase()
    state, job_id = await submitted(database, diamond(), [1, 2], start=False)
    assert database.state_of(job_id) is JobState.READY
    assert await drain(state) == []
    assert await state.lifecycle.start_job(job_id) is JobState.RUNNING


async def test_a_rejected_submission_leaves_no_job() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    with pytest.raises(BadRequest) as bad:
        await state.lifecycle.register_job(new_group(database), b"not zstd", b"", start=True)
    assert grpc_status(bad.value) is Status.INVALID_ARGUMENT
    with pytest.raises(InvalidResourceGroup) as unknown:
        await state.lifecycle.register_job(
            ResourceGroupId(99), *submission(diamond(), [1, 2]), start=True
        )
    assert grpc_status(unknown.value) is Status.UNAUTHENTICATED
    database.unavailable = True
    with pytest.raises(StorageUnavailable):
        await state.lifecycle.register_job(
            ResourceGroupId(1), *submission(diamond(), [1, 2]), start=True
        )
    assert database.jobs == {}
    assert len(state.lifecycle.cache) == 0
    assert await drain(state) == []


async def test_a_small_submission_is_decoded_on_the_loop_and_a_big_one_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    offloaded: list[str] = []
    offload = Persistence.offload

    async def recording(self: Persistence, fn: Callable[..., Any], *args: object) -> Any:
        offloaded.append(getattr(fn, "func", fn).__name__)
        return await offload(self, fn, *args)

    monkeypatch.setattr(Persistence, "offload", recording)
    group = new_group(database)
    small = submission(one_task(), [1])
    assert len(decompress(small[0])) <= INLINE_DECODE_BYTES
    await state.lifecycle.register_job(group, *small, start=True)
    assert offloaded == []
    big = submission(flat(64), list(range(64)))
    assert len(decompress(big[0])) > INLINE_DECODE_BYTES
    job_id = await state.lifecycle.register_job(group, *big, start=True)
    assert offloaded == ["decode_job_submission"]
    assert len(await drain(state)) == 1 + 64  # both jobs' input tasks
    assert database.state_of(job_id) is JobState.RUNNING


async def test_a_small_submission_over_a_lower_limit_names_the_setting() -> None:
    database = FakeDatabase()
    config = storage_config()
    limits = attrs.evolve(config.runtime.limits, max_task_graph_bytes=64)
    state = await create_state(
        database, attrs.evolve(config, runtime=attrs.evolve(config.runtime, limits=limits))
    )
    with pytest.raises(BadRequest, match=r"64-byte limit \(setting runtime.limits.max_task_graph"):
        await state.lifecycle.register_job(
            new_group(database), *submission(one_task(), [1]), start=True
        )
    assert database.jobs == {}


# --- WaitForJob ----------------------------------------------------------------------------


async def test_waiting_on_a_terminal_job_answers_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await submitted(database, graph, [5])
    await run_task(state, job_id, graph, fail=False)
    started = trio.current_time()
    outcome = await state.wait_for_job(job_id, 30)
    assert trio.current_time() == started
    assert outcome.state is JobState.SUCCEEDED
    assert outcome.serialized_outputs is not None
    assert decode_job_outputs(outcome.serialized_outputs) == [5]
    assert outcome.error_message is None


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
async def test_a_waiter_is_woken_by_the_durable_end_of_the_job(
    fail: bool, autojump_clock: trio.testing.MockClock
) -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await submitted(database, graph, [5])
    outcomes: list[JobOutcome] = []
    seen_in_database: list[JobState] = []

    async def waiter() -> None:
        outcomes.append(await state.wait_for_job(job_id, 30))
        seen_in_database.append(database.state_of(job_id))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(5)
        assert outcomes == []
        await run_task(state, job_id, graph, fail=fail)
    assert trio.current_time() == 5  # woken by the report, not by the 30 s bound
    (outcome,) = outcomes
    if fail:
        assert outcome == JobOutcome(JobState.FAILED, error_message="boom")
    else:
        assert outcome.state is JobState.SUCCEEDED
        assert outcome.serialized_outputs is not None
        assert decode_job_outputs(outcome.serialized_outputs) == [5]
    assert seen_in_database == [outcome.state]


async def test_a_waiter_is_woken_by_a_cancel_and_after_the_cleanup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state, plain = await submitted(database, one_task(), [1])
    with_cleanup = await state.lifecycle.register_job(
        new_group(database, "b"), *submission(one_task(cleanup=True), [1]), start=True
    )
    outcomes: dict[JobId, JobOutcome] = {}

    async def waiter(job_id: JobId) -> None:
        outcomes[job_id] = await state.wait_for_job(job_id, 60)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, plain)
        nursery.start_soon(waiter, with_cleanup)
        await trio.sleep(1)
        assert await state.lifecycle.cancel_job(plain) is JobState.CANCELLED
        assert await state.lifecycle.cancel_job(with_cleanup) is JobState.CLEANUP_READY
        await trio.sleep(1)
        assert list(outcomes) == [plain]
        em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
        (entry,) = await drain(state, Lane.CLEANUP)
        context = await state.lifecycle.register_task_instance(
            with_cleanup, entry.task_id, em, state.session
        )
        await state.lifecycle.report_task_success(
            with_cleanup, TaskId.CLEANUP, context.task_instance_id, state.session, b""
        )
    assert trio.current_time() == 2
    assert outcomes == {
        plain: JobOutcome(JobState.CANCELLED),
        with_cleanup: JobOutcome(JobState.CANCELLED),
    }


async def test_a_failed_write_does_not_wake_the_waiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await submitted(database, graph, [5])
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    (entry,) = await drain(state)
    context = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    report = (
        job_id,
        entry.task_id,
        context.task_instance_id,
        state.session,
        outputs_for(entry.task_id, context, graph),
    )
    outcomes: list[JobOutcome] = []

    async def waiter() -> None:
        outcomes.append(await state.wait_for_job(job_id, 30))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        database.fail_once["transition_job"] = 1
        with pytest.raises(StorageUnavailable):
            await state.lifecycle.report_task_success(*report)
        await trio.sleep(1)
        assert outcomes == []  # the job's end was not written, so nobody hears of it
        await state.lifecycle.report_task_success(*report)
    assert trio.current_time() == 2  # woken by the second report, not by the 30 s bound
    assert [outcome.state for outcome in outcomes] == [JobState.SUCCEEDED]


async def test_a_wait_that_times_out_answers_the_current_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state, running = await submitted(database, one_task(), [1])
    ready = await state.lifecycle.register_job(
        new_group(database, "b"), *submission(one_task(), [1]), start=False
    )
    assert await state.wait_for_job(running, 2.5) == JobOutcome(JobState.RUNNING)
    assert trio.current_time() == 2.5
    assert await state.wait_for_job(ready, 0) == JobOutcome(JobState.READY)
    assert trio.current_time() == 2.5


async def test_the_wait_is_bounded_by_the_storage_maximum(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    base = storage_config()
    config = base.__class__(
        runtime=StorageRuntimeConfig(
            task_instance_pool=base.runtime.task_instance_pool,
            job_cache_gc=base.runtime.job_cache_gc,
            max_job_wait_sec=3.0,
        )
    )
    state = await create_state(database, config)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(one_task(), [1]), start=True
    )
    assert await state.wait_for_job(job_id, 3600) == JobOutcome(JobState.RUNNING)
    assert trio.current_time() == 3.0


async def test_many_waiters_share_one_event_and_all_wake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await submitted(database, graph, [2])
    outcomes: list[JobState] = []

    async def waiter() -> None:
        outcomes.append((await state.wait_for_job(job_id, 30)).state)

    async with trio.open_nursery() as nursery:
        for _ in range(500):
            nursery.start_soon(waiter)
        await trio.sleep(1)
        reads = database.calls["get_job_status"]
        await run_task(state, job_id, graph, fail=False)
    assert trio.current_time() == 1
    assert outcomes == [JobState.SUCCEEDED] * 500
    assert database.calls["get_job_status"] == reads  # waiters never touch the database


async def test_an_evicted_job_is_answered_from_the_database(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    graph = one_task()
    state, job_id = await submitted(database, graph, [4])
    await run_task(state, job_id, graph, fail=False)
    failed = await state.lifecycle.register_job(
        new_group(database, "b"), *submission(graph, [1]), start=True
    )
    await run_task(state, failed, graph, fail=True)
    restarted = await create_state(database)  # a restart: terminal jobs are not cached
    assert restarted.lifecycle.cache.get(job_id) is None
    outcome = await restarted.wait_for_job(job_id, 30)
    assert outcome.state is JobState.SUCCEEDED
    assert outcome.serialized_outputs is not None
    assert decode_job_outputs(outcome.serialized_outputs) == [4]
    assert await restarted.wait_for_job(failed, 30) == JobOutcome(
        JobState.FAILED, error_message="boom"
    )
    assert trio.current_time() == 0


async def test_waiting_on_an_unknown_job_is_not_found_as_get_job_state() -> None:
    state = await create_state(FakeDatabase())
    with pytest.raises(JobNotFound) as caught:
        await state.wait_for_job(JobId(77), 1)
    assert grpc_status(caught.value) is Status.NOT_FOUND
