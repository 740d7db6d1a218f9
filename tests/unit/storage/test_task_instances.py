"""Task instances as EMs see them: register, report success or failure, retries, staleness.

Mirrors upstream's ``cache/task.rs`` suites (registration limits, retries, stale instances,
the diamond graph, force removal) and ``state/service.rs`` instance tests, and adds the fixes:
a wrong output count is a bad request that changes nothing, an unknown EM is refused at
registration, and a failed job leaves no instance behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
import trio

from spider.core.ids import ExecutionManagerId, JobId, SessionId, TaskInstanceId
from spider.core.job_state import JobState
from spider.core.task_graph import ExecutionPolicy, TaskGraph, TdlContext
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.core.wire import EMPTY_FRAME
from spider.rpc.errors import Status
from spider.storage import (
    BadRequest,
    CacheStale,
    EmDead,
    IllegalEmId,
    InstanceContext,
    Lane,
    StaleReason,
    StaleSession,
    StorageInternalError,
    StorageState,
    StorageUnavailable,
    grpc_status,
)

from .fake_database import FakeDatabase
from .jobs import (
    FAST_TIMEOUTS,
    create_state,
    decode_job_outputs,
    diamond,
    drain,
    frame_of,
    new_group,
    outputs_for,
    reference_job_outputs,
    storage_config,
    submission,
    summing_task,
    termination,
)


@attrs.define
class Running:
    """A started job and an EM to run its tasks."""

    database: FakeDatabase
    state: StorageState
    graph: TaskGraph
    job_id: JobId
    em: ExecutionManagerId

    async def register(self, task_id: TaskId) -> InstanceContext:
        return await self.state.lifecycle.register_task_instance(
            self.job_id, task_id, self.em, self.state.session
        )

    async def succeed(self, task_id: TaskId, context: InstanceContext) -> None:
        await self.state.lifecycle.report_task_success(
            self.job_id,
            task_id,
            context.task_instance_id,
            self.state.session,
            outputs_for(task_id, context, self.graph),
        )

    async def fail(self, task_id: TaskId, context: InstanceContext, message: str = "boom") -> None:
        await self.state.lifecycle.report_task_failure(
            self.job_id, task_id, context.task_instance_id, self.state.session, message
        )

    async def ready(self, lane: Lane = Lane.TASK) -> list[TaskId]:
        return [entry.task_id for entry in await drain(self.state, lane)]

    def task_state(self, task_id: TaskId) -> TaskState:
        jcb = self.state.lifecycle.cache.get(self.job_id)
        assert jcb is not None
        return jcb.accepting(task_id).state


async def start(
    graph: TaskGraph, inputs: Sequence[int], database: FakeDatabase | None = None
) -> Running:
    database = database or FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, inputs))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    return Running(database, state, graph, job_id, em)


def single(*, retries: int = 0, instances: int = 1, commit: bool = False) -> TaskGraph:
    graph = TaskGraph(commit_task=termination("commit") if commit else None)
    graph.insert_task(summing_task(1, 2, retries=retries, instances=instances))
    return graph


# --- registration ---------------------------------------------------------------------------


async def test_create_task_instance_returns_the_execution_context() -> None:
    run = await start(diamond(), [3, 4])
    assert await run.ready() == [TaskId.index(0)]
    context = await run.register(TaskId.index(0))
    assert context.task_instance_id == 1
    assert context.tdl_context == TdlContext("test_pkg", "sum")
    assert context.timeout_policy == run.graph.task(0).execution_policy.timeout_policy
    assert context.serialized_task_io == frame_of(3, 4)
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING
    assert len(run.state.lifecycle.pool) == 1


async def test_create_task_instance_for_a_job_not_in_the_cache_is_cache_stale() -> None:
    run = await start(diamond(), [1, 2])
    with pytest.raises(CacheStale) as caught:
        await run.state.lifecycle.register_task_instance(
            JobId(777), TaskId.index(0), run.em, run.state.session
        )
    assert caught.value.reason is StaleReason.JOB_NOT_IN_CACHE
    assert str(caught.value).startswith("cache stale: JobNotInCache: job not found in cache")
    assert grpc_status(caught.value) is Status.FAILED_PRECONDITION


async def test_an_unknown_execution_manager_is_refused_at_registration() -> None:
    run = await start(diamond(), [1, 2])
    with pytest.raises(IllegalEmId, match="execution manager 999 is not registered") as caught:
        await run.state.lifecycle.register_task_instance(
            run.job_id, TaskId.index(0), ExecutionManagerId(999), run.state.session
        )
    assert grpc_status(caught.value) is Status.INVALID_ARGUMENT
    assert run.task_state(TaskId.index(0)) is TaskState.READY
    assert len(run.state.lifecycle.pool) == 0
    await run.register(TaskId.index(0))  # the service is unharmed


async def test_a_registration_from_a_dead_execution_manager_is_refused() -> None:
    run = await start(diamond(), [1, 2])
    dead = run.database.register_execution_manager("10.0.0.9", 0.0)
    run.database.ems[dead].alive = False
    with pytest.raises(EmDead) as caught:
        await run.state.lifecycle.register_task_instance(
            run.job_id, TaskId.index(0), dead, run.state.session
        )
    assert grpc_status(caught.value) is Status.FAILED_PRECONDITION
    assert run.task_state(TaskId.index(0)) is TaskState.READY
    assert len(run.state.lifecycle.pool) == 0


async def test_a_known_live_execution_manager_is_checked_in_the_db_once() -> None:
    run = await start(single(instances=2), [1])
    other = run.database.register_execution_manager("10.0.0.3", 0.0)  # not via this state
    for _ in range(2):
        await run.state.lifecycle.register_task_instance(
            run.job_id, TaskId.index(0), other, run.state.session
        )
    assert run.database.calls["is_execution_manager_alive"] == 1
    assert len(run.state.lifecycle.pool) == 2


async def test_registering_a_pending_task_or_a_task_of_an_unstarted_job_is_stale() -> None:
    run = await start(diamond(), [1, 2])
    with pytest.raises(CacheStale) as pending:
        await run.register(TaskId.index(3))
    assert pending.value.reason is StaleReason.TASK_NOT_READY
    job_id = await run.state.lifecycle.register_job(
        new_group(run.database, "b"), *submission(diamond(), [1, 2])
    )
    with pytest.raises(CacheStale) as unstarted:
        await run.state.lifecycle.register_task_instance(
            job_id, TaskId.index(0), run.em, run.state.session
        )
    assert unstarted.value.reason is StaleReason.JOB_NOT_STARTED


async def test_task_ids_the_job_does_not_have_are_bad_requests() -> None:
    run = await start(diamond(), [1, 2])
    with pytest.raises(BadRequest, match="task index 4 does not exist: the job has 4 tasks"):
        await run.register(TaskId.index(4))
    with pytest.raises(BadRequest, match="has no commit task"):
        await run.register(TaskId.COMMIT)
    with pytest.raises(BadRequest, match="has no cleanup task"):
        await run.register(TaskId.CLEANUP)


@pytest.mark.parametrize(
    "call", ["register", "success", "failure"], ids=lambda name: f"stale_session_on_{name}"
)
async def test_task_instance_orchestration_returns_stale_session_on_mismatch(call: str) -> None:
    run = await start(diamond(), [1, 2])
    context = await run.register(TaskId.index(0))
    old = SessionId(run.state.session - 1)

    async def call_with_the_old_session() -> None:
        if call == "register":
            await run.state.lifecycle.register_task_instance(
                run.job_id, TaskId.index(0), run.em, old
            )
        elif call == "success":
            await run.state.lifecycle.report_task_success(
                run.job_id, TaskId.index(0), context.task_instance_id, old, frame_of(1)
            )
        else:
            await run.state.lifecycle.report_task_failure(
                run.job_id, TaskId.index(0), context.task_instance_id, old, "x"
            )

    with pytest.raises(StaleSession) as caught:
        await call_with_the_old_session()
    assert str(caught.value) == f"stale session; current storage session is {run.state.session}"
    assert grpc_status(caught.value) is Status.NOT_FOUND
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING


# --- per-task limits (upstream's registration suite, regular and termination tasks) ---------


async def job_at(task_id: TaskId, instances: int) -> Running:
    """A job in the state where ``task_id`` runs, that task allowing ``instances`` at once."""
    graph = TaskGraph(
        commit_task=attrs.evolve(termination("commit"), execution_policy=_policy(instances)),
        cleanup_task=attrs.evolve(termination("cleanup"), execution_policy=_policy(instances)),
    )
    graph.insert_task(summing_task(1, 1, instances=instances))
    run = await start(graph, [1])
    if task_id == TaskId.COMMIT:
        await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    elif task_id == TaskId.CLEANUP:
        await run.state.lifecycle.cancel_job(run.job_id)
    return run


def _policy(instances: int) -> ExecutionPolicy:
    return ExecutionPolicy(0, instances, FAST_TIMEOUTS)


TASK_KINDS = pytest.mark.parametrize(
    "task_id", [TaskId.index(0), TaskId.COMMIT, TaskId.CLEANUP], ids=str
)


@TASK_KINDS
async def test_concurrent_registration_up_to_the_limit(task_id: TaskId) -> None:
    run = await job_at(task_id, 10)
    results: list[InstanceContext] = []

    async def register() -> None:
        results.append(await run.register(task_id))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(register)
    assert len({context.task_instance_id for context in results}) == 10


@TASK_KINDS
async def test_concurrent_registration_exceeding_the_limit(task_id: TaskId) -> None:
    run = await job_at(task_id, 10)
    accepted: list[TaskInstanceId] = []
    refused: list[StaleReason] = []

    async def register() -> None:
        try:
            accepted.append((await run.register(task_id)).task_instance_id)
        except CacheStale as exc:
            refused.append(exc.reason)

    async with trio.open_nursery() as nursery:
        for _ in range(16):
            nursery.start_soon(register)
    assert len(accepted) == 10
    assert refused == [StaleReason.TASK_INSTANCE_LIMIT_EXCEEDED] * 6


@TASK_KINDS
async def test_registration_after_termination_is_stale(task_id: TaskId) -> None:
    run = await job_at(task_id, 2)
    context = await run.register(task_id)
    await run.succeed(task_id, context)
    with pytest.raises(CacheStale) as caught:
        await run.register(task_id)
    expected = {
        TaskId.index(0): StaleReason.JOB_NO_LONGER_RUNNING,  # the job moved on to CommitReady
        TaskId.COMMIT: StaleReason.JOB_ALREADY_TERMINATED,
        TaskId.CLEANUP: StaleReason.JOB_ALREADY_TERMINATED,
    }
    assert caught.value.reason is expected[task_id]


async def test_registration_after_the_task_succeeded_is_task_already_terminated() -> None:
    run = await start(diamond(instances=2), [1, 2])
    context = await run.register(TaskId.index(0))
    await run.succeed(TaskId.index(0), context)
    with pytest.raises(CacheStale) as caught:
        await run.register(TaskId.index(0))
    assert caught.value.reason is StaleReason.TASK_ALREADY_TERMINATED


async def test_fail_first_instance_then_succeed_a_new_one() -> None:
    run = await start(single(retries=1), [5])
    first = await run.register(TaskId.index(0))
    await run.fail(TaskId.index(0), first)
    assert run.task_state(TaskId.index(0)) is TaskState.READY
    # StartJob's entry was never polled, so the retry's entry is deduplicated against it.
    assert await run.ready() == [TaskId.index(0)]
    second = await run.register(TaskId.index(0))
    await run.succeed(TaskId.index(0), second)
    assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.SUCCEEDED


async def test_fail_instance_then_reject_the_stale_and_the_surviving_instance() -> None:
    run = await start(single(instances=2), [5])
    failing = await run.register(TaskId.index(0))
    surviving = await run.register(TaskId.index(0))
    await run.fail(TaskId.index(0), failing, "first failure")
    assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.FAILED
    assert await run.state.lifecycle.get_job_error(run.job_id) == "first failure"
    for context in (failing, surviving):
        with pytest.raises(CacheStale) as caught:
            await run.succeed(TaskId.index(0), context)
        assert caught.value.reason is StaleReason.JOB_ALREADY_TERMINATED
    assert len(run.state.lifecycle.pool) == 0


async def test_a_failed_job_makes_every_other_instance_stale_and_drops_it_from_the_pool() -> None:
    run = await start(diamond(), [1, 2])
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    b = await run.register(TaskId.index(1))
    c = await run.register(TaskId.index(2))
    assert len(run.state.lifecycle.pool) == 2
    await run.fail(TaskId.index(1), b, "B broke")
    assert len(run.state.lifecycle.pool) == 0
    with pytest.raises(CacheStale):
        await run.succeed(TaskId.index(2), c)
    assert run.database.state_of(run.job_id) is JobState.FAILED
    assert run.database.jobs[run.job_id].error_message == "B broke"


async def test_retries_are_used_one_per_failure_and_the_last_fails_the_job() -> None:
    run = await start(single(retries=2), [5])
    for attempt in range(2):
        await run.fail(TaskId.index(0), await run.register(TaskId.index(0)), f"try {attempt}")
        assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.RUNNING
    await run.fail(TaskId.index(0), await run.register(TaskId.index(0)), "try 2")
    assert await run.state.lifecycle.get_job_error(run.job_id) == "try 2"


# --- success: dataflow, outputs -------------------------------------------------------------


async def test_diamond_sequential_execution() -> None:
    run = await start(diamond(), [3, 4])
    assert await run.ready() == [TaskId.index(0)]
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    assert await run.ready() == [TaskId.index(1), TaskId.index(2)]
    await run.succeed(TaskId.index(1), await run.register(TaskId.index(1)))
    assert await run.ready() == []
    await run.succeed(TaskId.index(2), await run.register(TaskId.index(2)))
    assert await run.ready() == [TaskId.index(3)]
    d = await run.register(TaskId.index(3))
    assert d.serialized_task_io == frame_of(3 + 4 + 10, 3 + 4 + 20)
    await run.succeed(TaskId.index(3), d)
    assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.SUCCEEDED
    outputs = decode_job_outputs(await run.state.lifecycle.get_job_outputs(run.job_id))
    assert outputs == reference_job_outputs(run.graph, [3, 4]) == [3 + 4 + 10 + 3 + 4 + 20 + 30]
    assert run.state.lifecycle.cache.get(run.job_id).dataflow is None  # type: ignore[union-attr]


async def test_diamond_concurrent_b_and_c_execution() -> None:
    run = await start(diamond(), [3, 4])
    assert await run.ready() == [TaskId.index(0)]
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    contexts = {task_id: await run.register(task_id) for task_id in await run.ready()}
    async with trio.open_nursery() as nursery:
        for task_id, context in contexts.items():
            nursery.start_soon(run.succeed, task_id, context)
    assert await run.ready() == [TaskId.index(3)]
    await run.succeed(TaskId.index(3), await run.register(TaskId.index(3)))
    outputs = decode_job_outputs(await run.state.lifecycle.get_job_outputs(run.job_id))
    assert outputs == reference_job_outputs(run.graph, [3, 4])


async def test_finished_task_outputs_are_persisted_before_the_answer() -> None:
    run = await start(diamond(), [3, 4])
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    assert run.database.task_outputs[run.job_id] == {0: frame_of(7)}


async def test_outputs_with_the_wrong_count_are_a_bad_request_that_changes_nothing() -> None:
    run = await start(single(), [5])
    context = await run.register(TaskId.index(0))
    with pytest.raises(BadRequest, match=r"declares 2 output\(s\) but the report carries 1") as c:
        await run.state.lifecycle.report_task_success(
            run.job_id,
            TaskId.index(0),
            context.task_instance_id,
            run.state.session,
            frame_of(1),
        )
    assert grpc_status(c.value) is Status.INVALID_ARGUMENT
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING
    assert run.database.task_outputs == {}
    await run.succeed(TaskId.index(0), context)
    assert decode_job_outputs(await run.state.lifecycle.get_job_outputs(run.job_id)) == [5, 6]


async def test_outputs_that_are_not_a_wire_frame_are_a_bad_request() -> None:
    run = await start(single(), [5])
    context = await run.register(TaskId.index(0))
    with pytest.raises(BadRequest, match="invalid wire frame"):
        await run.state.lifecycle.report_task_success(
            run.job_id,
            TaskId.index(0),
            context.task_instance_id,
            run.state.session,
            b"\x05\x00",
        )
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING


async def test_termination_tasks_get_the_job_outputs_and_an_empty_frame() -> None:
    graph = TaskGraph(commit_task=termination("commit"), cleanup_task=termination("cleanup"))
    graph.insert_task(summing_task(1, 1))
    run = await start(graph, [8])
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    assert await run.ready(Lane.COMMIT) == [TaskId.COMMIT]
    commit = await run.register(TaskId.COMMIT)
    assert decode_job_outputs(commit.serialized_task_io) == [8]
    assert commit.tdl_context == TdlContext("test_pkg", "commit")
    await run.state.lifecycle.cancel_job(run.job_id)
    cleanup = await run.register(TaskId.CLEANUP)
    assert cleanup.serialized_task_io == EMPTY_FRAME == b"\x00\x00\x00\x00"


async def test_a_commit_failure_with_no_retry_fails_the_job() -> None:
    run = await start(single(commit=True), [1])
    await run.succeed(TaskId.index(0), await run.register(TaskId.index(0)))
    await run.fail(TaskId.COMMIT, await run.register(TaskId.COMMIT), "commit broke")
    assert run.database.state_of(run.job_id) is JobState.FAILED
    assert await run.state.lifecycle.get_job_error(run.job_id) == "commit broke"


# --- force removal (dead EM) -----------------------------------------------------------------


async def test_force_remove_the_only_instance_resets_the_task_to_ready() -> None:
    run = await start(single(retries=0), [5])
    await run.ready()
    context = await run.register(TaskId.index(0))
    (record,) = run.state.lifecycle.pool.snapshot()
    run.state.lifecycle.remove_instance_of_dead_em(record)
    assert run.task_state(TaskId.index(0)) is TaskState.READY
    assert await run.ready() == [TaskId.index(0)]
    jcb = run.state.lifecycle.cache.get(run.job_id)
    assert jcb is not None
    assert jcb.accepting(TaskId.index(0)).retries_left == 0
    with pytest.raises(CacheStale) as caught:
        await run.succeed(TaskId.index(0), context)
    assert caught.value.reason is StaleReason.INVALID_TASK_INSTANCE_ID


async def test_force_remove_one_of_two_instances_keeps_the_task_running() -> None:
    run = await start(single(instances=2), [5])
    first = await run.register(TaskId.index(0))
    second = await run.register(TaskId.index(0))
    record = run.state.lifecycle.pool.get(first.task_instance_id)
    assert record is not None
    run.state.lifecycle.remove_instance_of_dead_em(record)
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING
    await run.succeed(TaskId.index(0), second)
    assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.SUCCEEDED


# --- database failures never corrupt the cache ------------------------------------------------


async def test_a_failed_output_write_leaves_the_task_running_and_the_report_can_be_retried() -> (
    None
):
    run = await start(diamond(), [1, 2])
    assert await run.ready() == [TaskId.index(0)]
    context = await run.register(TaskId.index(0))
    run.database.fail_once["record_task_outputs"] = 1
    with pytest.raises(StorageUnavailable, match="record_task_outputs") as caught:
        await run.succeed(TaskId.index(0), context)
    assert grpc_status(caught.value) is Status.UNAVAILABLE
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING
    assert await run.ready() == []
    await run.succeed(TaskId.index(0), context)
    assert await run.ready() == [TaskId.index(1), TaskId.index(2)]


async def test_a_failed_completion_write_leaves_the_job_running() -> None:
    run = await start(single(), [1])
    context = await run.register(TaskId.index(0))
    run.database.fail_once["transition_job"] = 1
    with pytest.raises(StorageUnavailable):
        await run.succeed(TaskId.index(0), context)
    assert await run.state.lifecycle.get_job_state(run.job_id) is JobState.RUNNING
    assert run.database.state_of(run.job_id) is JobState.RUNNING
    await run.succeed(TaskId.index(0), context)
    assert run.database.state_of(run.job_id) is JobState.SUCCEEDED


async def test_a_failed_job_failure_write_keeps_the_instance_live() -> None:
    run = await start(single(), [1])
    context = await run.register(TaskId.index(0))
    run.database.fail_once["transition_job"] = 1
    with pytest.raises(StorageUnavailable):
        await run.fail(TaskId.index(0), context, "broke")
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING
    await run.fail(TaskId.index(0), context, "broke")
    assert run.database.state_of(run.job_id) is JobState.FAILED


async def test_failed_start_and_cancel_writes_change_nothing() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(diamond(), [1, 2]))
    database.unavailable = True
    with pytest.raises(StorageUnavailable):
        await state.lifecycle.start_job(job_id)
    with pytest.raises(StorageUnavailable):
        await state.lifecycle.cancel_job(job_id)
    database.unavailable = False
    assert await state.lifecycle.get_job_state(job_id) is JobState.READY
    assert await drain(state) == []
    assert await state.lifecycle.start_job(job_id) is JobState.RUNNING


async def test_a_cache_and_db_disagreement_fails_the_request_but_not_the_service() -> None:
    run = await start(single(), [1])
    context = await run.register(TaskId.index(0))
    run.database.jobs[run.job_id] = attrs.evolve(
        run.database.jobs[run.job_id], state=JobState.CANCELLED
    )
    with pytest.raises(StorageInternalError, match="the database refused the move") as caught:
        await run.succeed(TaskId.index(0), context)
    assert grpc_status(caught.value) is Status.INTERNAL
    assert run.task_state(TaskId.index(0)) is TaskState.RUNNING


async def test_unexpected_database_errors_become_internal_errors() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    database.broken.add("get_job_status")
    with pytest.raises(StorageInternalError, match="RuntimeError: driver bug"):
        await state.lifecycle.get_job_state(JobId(5))


# --- concurrency with real worker threads ------------------------------------------------------


async def test_concurrent_successes_of_one_task_are_applied_once() -> None:
    database = FakeDatabase()
    state = await StorageState.create(storage_config(), database)  # threaded persistence
    graph = diamond(instances=4)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [1, 2]))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    await drain(state)
    contexts = [
        await state.lifecycle.register_task_instance(job_id, TaskId.index(0), em, state.session)
        for _ in range(4)
    ]
    outcomes: list[str] = []

    async def report(context: InstanceContext) -> None:
        try:
            await state.lifecycle.report_task_success(
                job_id,
                TaskId.index(0),
                context.task_instance_id,
                state.session,
                outputs_for(TaskId.index(0), context, graph),
            )
            outcomes.append("accepted")
        except CacheStale as exc:
            outcomes.append(exc.reason.value)

    async with trio.open_nursery() as nursery:
        for context in contexts:
            nursery.start_soon(report, context)
    assert sorted(outcomes) == ["TaskAlreadyTerminated"] * 3 + ["accepted"]
    assert [entry.task_id for entry in await drain(state)] == [TaskId.index(1), TaskId.index(2)]
    assert len(state.lifecycle.pool) == 0
