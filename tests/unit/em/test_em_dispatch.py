"""The dispatch loop: polling, acknowledgements, triage, registration, execution, reporting."""

from __future__ import annotations

import itertools
import logging

import pytest
import trio
import trio.testing

from spider.core import TaskId
from spider.core.ids import SessionId
from spider.em.assignment import ExecutionContext
from spider.em.errors import (
    CacheStaleAnswer,
    EmClientError,
    IllegalId,
    InvalidInput,
    MarkedDead,
    ProtocolError,
    ServerError,
    StaleSessionAnswer,
)
from spider.em.pool import TaskOutcome, TaskRequest, TaskSucceeded

from .fakes import assignment, context, transport
from .harness import Em, settings


async def test_success_is_reported_with_the_instance_and_the_assignment_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context(instance=9, task_io=b"\x01\x00\x00\x00x"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    (success,) = em.storage.successes
    assert success.outputs == b"\x01\x00\x00\x00x"
    assert (success.target.job_id, success.target.task_id) == (42, TaskId.index(0))
    assert (success.target.task_instance_id, success.target.em_id) == (9, 77)
    assert success.target.session == 5
    assert em.storage.failures == []
    (request,) = em.pool.started
    assert (request.package, request.task_func, request.hard_timeout) == (
        "fake_package",
        "echo",
        5.0,
    )
    assert em.scheduler.outstanding == []


async def test_a_record_rides_only_the_first_rpc_of_a_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context())
    async with em.running():
        em.scheduler.push(assignment(1))
        # Poll 2 carries the record, times out (no_task) after the 2 s wait; poll 3 carries none.
        await em.wait_polling(calls=3)
    assert em.scheduler.next_task_calls[:3] == [None, assignment(1).record, None]


async def test_a_failed_poll_backs_off_and_keeps_its_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    # A stale assignment (session 1 < 5) is acknowledged without calling storage.
    em.scheduler.push(assignment(1, session=1), transport(), transport())
    async with em.running():
        await em.wait_polling(calls=4)
        times = em.scheduler.next_task_times
    record = assignment(1).record
    assert em.scheduler.next_task_calls[:4] == [None, record, record, record]
    assert [round(b - a, 9) for a, b in itertools.pairwise(times[1:])] == [0.1, 0.2]
    assert em.storage.register_calls == []
    assert em.scheduler.outstanding == []


async def test_idle_polls_are_paced_when_the_scheduler_answers_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(scheduler_poll_wait_ms=0))
    async with em.running():
        await em.scheduler.wait_until(lambda: len(em.scheduler.next_task_calls) >= 5)
    times = em.scheduler.next_task_times[:5]
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [0.05] * 4


async def test_a_stale_assignment_is_dropped_without_calling_storage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    async with em.running():
        em.scheduler.push(assignment(1, session=4))
        await em.wait_polling(calls=2)
    assert em.storage.register_calls == []
    assert em.pool.started == []
    assert em.scheduler.outstanding == []


@pytest.mark.parametrize(
    ("replies", "runs", "registers"),
    [
        ([CacheStaleAnswer("cache stale: task already terminated")], False, 1),
        ([InvalidInput("malformed task id")], False, 1),
        ([ProtocolError("the response has no execution_context")], False, 1),
        ([ServerError("storage service internal error")] * 7 + [context()], True, 8),
        ([ServerError("internal"), ServerError("internal"), context()], True, 3),
        ([transport(), transport(), transport(), context()], True, 4),
    ],
)
async def test_registration_outcomes(
    autojump_clock: trio.testing.MockClock,
    replies: list[ExecutionContext | EmClientError],
    runs: bool,
    registers: int,
) -> None:
    em = Em()
    em.storage.register_replies.extend(replies)
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.wait_polling(calls=2)
        await em.storage.wait_until(lambda: len(em.storage.reports) == int(runs))
    assert len(em.storage.register_calls) == registers
    assert len(em.pool.started) == int(runs)
    # Registered or dropped, the assignment was acknowledged on the next poll.
    assert em.scheduler.next_task_calls[1] == assignment(1).record
    assert em.scheduler.outstanding == []


@pytest.mark.parametrize(
    "refusal", [MarkedDead("execution manager 1 is dead"), IllegalId("unknown em id 1")]
)
async def test_a_refused_em_leaves_the_assignment_unacknowledged(
    autojump_clock: trio.testing.MockClock, refusal: EmClientError
) -> None:
    """Storage no longer accepts this EM: acknowledging would lose the task, since storage
    registered nothing; unacknowledged, Shutdown hands it back to the scheduler."""
    em = Em()
    em.storage.register_replies.append(refusal)
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.register_calls) == 1)
        await em.wait_polling(calls=2)
    assert em.pool.started == []
    assert assignment(1).record not in em.scheduler.next_task_calls
    assert em.scheduler.outstanding == [assignment(1).record]


async def test_stale_session_rejection_drops_the_assignment_and_refreshes_liveness(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(storage_heartbeat_interval=5.0))
    em.storage.register_replies.append(StaleSessionAnswer("stale session; current session is 6"))
    async with em.running():
        await em.wait_polling()
        beats = len(em.storage.heartbeat_times)
        pushed_at = trio.current_time()
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) == beats + 1)
        assert em.storage.heartbeat_times[-1] == pushed_at  # not the 5 s period
        await em.wait_polling(calls=2)
    assert len(em.storage.register_calls) == 1
    assert em.storage.reports == []
    assert em.scheduler.outstanding == []


async def test_registration_retries_stop_once_the_session_moves_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.extend([transport()] * 50)
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.register_calls) == 3)
        em.storage.session = SessionId(6)  # the next heartbeat advances the tracker
        await em.wait_polling(calls=2)
    assert len(em.storage.register_calls) == 3
    assert em.pool.started == []
    assert em.scheduler.outstanding == []


async def test_an_outcome_is_not_reported_if_the_session_moved_on_during_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context("slow"))
    release = trio.Event()

    async def slow(request: TaskRequest) -> TaskOutcome:
        await release.wait()
        return TaskSucceeded(b"\x00\x00\x00\x00", 1)

    em.pool.behaviours["slow"] = slow
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        beats = len(em.storage.heartbeat_times)
        em.storage.session = SessionId(6)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) > beats)
        release.set()
        await em.wait_polling(calls=2)
    assert em.pool.finished == em.pool.started
    assert em.storage.reports == []
    assert em.scheduler.outstanding == []


async def test_commit_and_cleanup_assignments_reach_the_pool_as_termination_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    outputs = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x05"
    em.storage.register_replies.extend([context(task_io=outputs), context(task_io=b"")])
    async with em.running():
        em.scheduler.push(
            assignment(1, task_id=TaskId.COMMIT), assignment(2, task_id=TaskId.CLEANUP)
        )
        await em.storage.wait_until(lambda: len(em.storage.successes) == 2)
    commit, cleanup = em.pool.started
    assert (commit.task_id, commit.serialized_task_io) == (TaskId.COMMIT, outputs)
    assert commit.task_context().serialized_task_graph_outputs == outputs
    assert (cleanup.task_id, cleanup.executor_request().raw_inputs) == (
        TaskId.CLEANUP,
        b"\x00\x00\x00\x00",
    )
    assert [s.target.task_id for s in em.storage.successes] == [TaskId.COMMIT, TaskId.CLEANUP]


async def test_two_slots_run_tasks_at_the_same_time_and_share_the_ledger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.pool = type(em.pool)(size=2)

    async def second(request: TaskRequest) -> TaskOutcome:
        await trio.sleep(1.0)
        return TaskSucceeded(b"\x00\x00\x00\x00", 1)

    em.pool.behaviours["second"] = second
    em.storage.register_replies.extend([context("second", instance=n) for n in range(1, 5)])
    async with em.running():
        start = trio.current_time()
        em.scheduler.push(*(assignment(n) for n in range(1, 5)))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 4)
        elapsed = trio.current_time() - start
    assert elapsed == pytest.approx(2.0)
    assert sorted(s.target.task_instance_id for s in em.storage.successes) == [1, 2, 3, 4]
    assert em.scheduler.outstanding == []


async def test_a_task_that_runs_and_is_reported_writes_one_info_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO JSON lines cost the EM about 7% of its CPU per task: only the outcome is INFO.
    caplog.set_level(logging.DEBUG, logger="spider.em")
    em = Em()
    em.storage.register_replies.extend([context(instance=1), context(instance=2)])
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 2)
        caplog.clear()
        em.storage.register_replies.append(context(instance=3))
        em.scheduler.push(assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    per_task = [
        record
        for record in caplog.records
        if getattr(record, "task_instance_id", None) == 3
        or getattr(record, "assignment_id", None) == 3
    ]
    assert [r.getMessage() for r in per_task if r.levelno >= logging.INFO] == [
        "Task completed successfully."
    ]
    assert len(per_task) >= 3  # received, executor acquired, reported: at DEBUG
