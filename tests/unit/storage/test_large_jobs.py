"""Large jobs driven to the end in-process, with injected failures (upstream's ``jcb_test``).

Sixteen concurrent simulated EM workers poll the three lanes and run every task; half of the
tasks (chosen by a seeded generator) first get two instances that are registered and failed
concurrently, which their retry budget (3) absorbs. The jobs run on Trio's mock clock with
inline database calls, so a job that stops making progress fails its test at once.
"""

from __future__ import annotations

import random

import trio
import trio.testing

from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId

from .fake_database import FakeDatabase
from .jobs import (
    SimulatedEm,
    create_state,
    decode_job_outputs,
    flat,
    layered,
    new_group,
    reference_job_outputs,
    submission,
)


def half_of_the_tasks(seed: int = 0) -> set[TaskId]:
    rng = random.Random(seed)
    return {TaskId.index(n) for n in range(10_000) if rng.random() < 0.5}


async def run_to_the_end(
    graph: TaskGraph, inputs: list[int], *, cancel: bool = False
) -> tuple[JobState, SimulatedEm, FakeDatabase, list[int] | None]:
    database = FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, inputs))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    unlucky = half_of_the_tasks()
    simulated = SimulatedEm(state, graph, em, twin_failures=unlucky.__contains__)
    if cancel:
        await state.lifecycle.cancel_job(job_id)
    final = await simulated.run_job(job_id)
    assert database.state_of(job_id) is final
    outputs = None
    if final is JobState.SUCCEEDED:
        outputs = decode_job_outputs(await state.lifecycle.get_job_outputs(job_id))
    assert len(state.lifecycle.pool) == 0
    return final, simulated, database, outputs


async def test_flat_success(autojump_clock: trio.testing.MockClock) -> None:
    graph = flat(10_000, retries=3, instances=2)
    inputs = list(range(10_000))
    final, simulated, _, outputs = await run_to_the_end(graph, inputs)
    assert final is JobState.SUCCEEDED
    assert outputs == reference_job_outputs(graph, inputs)
    assert {TaskId.index(n) for n in range(10_000)} <= set(simulated.successes)
    assert simulated.successes[TaskId.COMMIT] == 1
    assert TaskId.CLEANUP not in simulated.successes


async def test_flat_cancel(autojump_clock: trio.testing.MockClock) -> None:
    final, simulated, _, _ = await run_to_the_end(
        flat(10_000, retries=3, instances=2), list(range(10_000)), cancel=True
    )
    assert final is JobState.CANCELLED
    assert simulated.successes == {TaskId.CLEANUP: 1}


async def test_layered_network_success(autojump_clock: trio.testing.MockClock) -> None:
    graph = layered(10, 100, 25, retries=3, instances=2)
    inputs = list(range(100))
    final, simulated, _, outputs = await run_to_the_end(graph, inputs)
    assert final is JobState.SUCCEEDED
    assert outputs == reference_job_outputs(graph, inputs)
    assert {TaskId.index(n) for n in range(1000)} <= set(simulated.successes)
    assert simulated.successes[TaskId.COMMIT] == 1


async def test_always_failing_tasks_fail_the_job(autojump_clock: trio.testing.MockClock) -> None:
    graph = flat(3, retries=2)
    database = FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(graph, [1, 2, 3]))
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    simulated = SimulatedEm(state, graph, em, fail=lambda task_id, attempt: True)
    assert await simulated.run_job(job_id) is JobState.FAILED
    assert simulated.successes == {}
    assert (await state.lifecycle.get_job_error(job_id)).startswith("injected failure of Index(")
