"""Outcome reports: retried while storage is unreachable, dropped once they stop mattering."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from spider.core.ids import SessionId
from spider.em.errors import CacheStaleAnswer, InvalidInput, ServerError, StaleSessionAnswer
from spider.em.pool import PoolFailureKind, TaskFailed, TaskOutcome, TaskRequest

from .fakes import assignment, context, transport
from .harness import Em, settings


async def test_a_report_is_retried_with_backoff_until_storage_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context())
    em.storage.report_replies.extend([transport(), transport(), ServerError("db down")])
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        first = trio.current_time()
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        assert trio.current_time() - first == 0.1 + 0.2 + 0.4
    assert em.storage.report_attempts == 4


async def test_a_failed_report_does_not_stop_the_next_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.extend([context("fail", instance=1), context(instance=2)])

    async def fail(request: TaskRequest) -> TaskOutcome:
        await trio.lowlevel.checkpoint()
        return TaskFailed("in-task failure: ValueError: always_fail", "execution", 5)

    em.pool.behaviours["fail"] = fail
    em.storage.report_replies.extend([InvalidInput("bad outputs frame")])
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        em.storage.report_replies.clear()
        em.scheduler.push(assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.storage.failures == []
    assert em.storage.report_attempts == 2
    assert em.scheduler.outstanding == []


@pytest.mark.parametrize("batched", [True, False], ids=["ReportTaskOutcomes", "one-by-one"])
async def test_outputs_storage_refuses_are_reported_as_the_task_s_failure(
    autojump_clock: trio.testing.MockClock, batched: bool
) -> None:
    """Dropping the refused success would leave the instance live until a timeout (forever
    without one): the failure lets retries and then the job's end follow, with the reason."""
    em = Em()
    em.storage.extension = batched
    em.storage.register_replies.append(context())
    refusal = "task outputs of task Index(0) are 9 bytes, over the limit of 8 bytes"
    em.storage.report_replies.append(InvalidInput(refusal))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.failures) == 1)
    assert em.storage.successes == []
    (failure,) = em.storage.failures
    assert failure.target.task_instance_id == 1
    assert failure.message == f"storage refused the task's outputs: {refusal}"


async def test_a_failure_is_reported_with_its_readable_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context("fail"))

    async def fail(request: TaskRequest) -> TaskOutcome:
        await trio.lowlevel.checkpoint()
        return TaskFailed("hard timeout (200 ms) exceeded", PoolFailureKind.TIMEOUT)

    em.pool.behaviours["fail"] = fail
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.failures) == 1)
    # Upstream's wording first, then which task it was and where it ran.
    first, task = str(em.storage.failures[0].message).splitlines()
    assert first == "hard timeout (200 ms) exceeded"
    assert task == (
        "task 0 (fake_package::fail) of job 42, instance 1, on execution manager 77 "
        f"(host {socket.gethostname()})"
    )
    assert em.storage.failures[0].target.task_instance_id == 1


async def test_a_report_stops_retrying_once_storage_moved_to_a_new_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(storage_heartbeat_interval=1.0))
    em.storage.register_replies.append(context())
    em.storage.report_replies.extend([transport()] * 100)
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 3)
        em.storage.session = SessionId(6)
        beats = len(em.storage.heartbeat_times)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) > beats)
        attempts = em.storage.report_attempts
        await trio.sleep(30)
        assert em.storage.report_attempts <= attempts + 1
    assert em.storage.reports == []


async def test_stale_rejections_drop_the_report_and_a_stale_session_refreshes_liveness(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(storage_heartbeat_interval=5.0))
    em.storage.register_replies.extend([context(instance=1), context(instance=2)])
    em.storage.report_replies.extend(
        [StaleSessionAnswer("stale session"), CacheStaleAnswer("cache stale")]
    )
    async with em.running():
        await em.wait_polling()
        beats = len(em.storage.heartbeat_times)
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) == beats + 1)
        em.scheduler.push(assignment(2))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 2)
        await trio.sleep(10)
    assert em.storage.report_attempts == 2
    assert em.storage.reports == []


async def test_a_full_report_queue_holds_dispatch_back_until_a_report_lands(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(max_pending_reports=1))
    em.storage.register_replies.extend([context(instance=1), context(instance=2), context()])
    # The first report keeps failing for 0.1 + 0.2 + 0.4 s.
    em.storage.report_replies.extend([transport(), transport(), transport()])
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.pool.wait_until(lambda: len(em.pool.finished) == 2)
        await trio.sleep(0.5)
        # Task 2's outcome waits for room: no third assignment was taken meanwhile.
        assert len(em.pool.started) == 2
        assert len(em.scheduler.responses) == 1
        assert em.storage.successes == []
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    assert [r.target.task_instance_id for r in em.storage.successes][:2] == [1, 2]


async def test_a_stop_lifts_the_report_bound_so_no_outcome_is_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(max_pending_reports=1))
    em.storage.register_replies.extend([context(instance=1), context(instance=2)])
    em.storage.report_replies.extend([transport()] * 4)
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.pool.wait_until(lambda: len(em.pool.finished) == 2)
        await em.stop()
    assert sorted(r.target.task_instance_id for r in em.storage.successes) == [1, 2]
    assert em.scheduler.shutdown_calls == [[assignment(2).record]]
    assert em.scheduler.outstanding == []
