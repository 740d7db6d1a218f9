"""Stopping: at every step, within the grace, forced by a second request, after failures."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.em.errors import DispatchFailed, ExecutorsUnavailable, IllegalId, RegistrationRefused
from spider.em.pool import ExecutorSpawnError, TaskOutcome, TaskRequest, TaskSucceeded

from .fakes import assignment, context, transport
from .harness import Em, settings


def _hang_em(**changes: object) -> Em:
    em = Em(**changes)  # type: ignore[arg-type]

    async def hang(request: TaskRequest) -> TaskOutcome:
        await trio.sleep_forever()

    async def seconds(request: TaskRequest) -> TaskOutcome:
        await trio.sleep(3.0)
        return TaskSucceeded(b"\x00\x00\x00\x00", 1)

    em.pool.behaviours.update(hang=hang, three_seconds=seconds)
    return em


async def test_a_stop_while_polling_sends_shutdown_and_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    async with em.running():
        await em.wait_polling()
        await em.stop()
    assert em.error is None
    assert em.scheduler.shutdown_calls == [[]]
    assert em.scheduler.polling == 0


async def test_a_stop_during_registration_leaves_exactly_that_assignment_unacknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.extend([context()])
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        # The second registration blocks; stop while it is in flight.
        em.storage.block_register = True
        em.scheduler.push(assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.register_calls) == 2)
        await em.stop()
    assert em.error is None
    assert em.scheduler.outstanding == [assignment(2).record]
    assert len(em.storage.successes) == 1


async def test_a_task_that_ends_within_the_grace_is_reported_and_acknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _hang_em()
    em.storage.register_replies.append(context("three_seconds"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        stopped_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(stopped_at + 3.0)
    assert len(em.storage.successes) == 1
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.scheduler.outstanding == []


async def test_a_task_past_the_grace_is_killed_and_reported_as_such(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _hang_em()
    em.em_stop.grace = 2.0
    em.storage.register_replies.append(context("hang"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        stopped_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(stopped_at + 2.0)
    assert [str(f.message).splitlines()[0] for f in em.storage.failures] == [
        "killed at shutdown after the 2 s grace"
    ]
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]


async def test_a_second_request_kills_the_task_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _hang_em()
    em.storage.register_replies.append(context("hang"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        em.em_stop.request("SIGTERM")
        await trio.sleep(1.0)
        forced_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(forced_at)
    (failure,) = em.storage.failures
    assert failure.message is not None
    assert failure.message.startswith(
        "killed at shutdown: the execution manager was stopped at once"
    )
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.em_stop.forced


async def test_reports_drain_for_a_bounded_time_at_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(shutdown_drain=4.0))
    em.storage.register_replies.append(context())
    em.storage.block_reports = True
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        stopped_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(stopped_at + 4.0)
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]


async def test_a_report_in_flight_at_a_stop_is_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context())
    em.storage.report_replies.extend([transport()] * 3)
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        await em.stop()
    assert len(em.storage.successes) == 1
    assert em.storage.report_attempts == 4
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]


async def test_a_second_request_during_a_hung_shutdown_rpc_exits_within_the_forced_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_replies.append(context())
    em.scheduler.block_shutdown = True
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        em.em_stop.request("SIGTERM")
        await em.scheduler.wait_until(lambda: len(em.scheduler.shutdown_calls) == 1)
        forced_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(forced_at + 1.0)
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]


async def test_a_hung_shutdown_rpc_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    em = Em(settings=settings(shutdown_rpc_bound=3.0))
    em.scheduler.block_shutdown = True
    async with em.running():
        await em.wait_polling()
        stopped_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(stopped_at + 3.0)
    assert em.error is None


async def test_shutdown_rpc_transport_failures_are_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _hang_em()
    em.scheduler.shutdown_errors.extend([transport(), transport()])
    em.storage.register_replies.append(context("three_seconds"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        stopped_at = trio.current_time()
        await em.stop()
    assert em.finished_at == pytest.approx(stopped_at + 3.0 + 0.1 + 0.2)
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.scheduler.outstanding == []


async def test_a_stop_during_boot_registration_returns_without_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_em_replies.extend([transport()] * 1000)
    async with em.running():
        await em.storage.wait_until(lambda: em.storage.register_em_calls >= 5)
        await em.stop()
    assert em.error is None
    assert em.pool.opened == 0
    assert em.scheduler.shutdown_calls == []


async def test_boot_registration_retries_until_storage_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_em_replies.extend([transport()] * 3)
    async with em.running():
        await em.wait_polling()
        assert trio.current_time() == pytest.approx(0.1 + 0.2 + 0.4)
    assert em.storage.register_em_calls == 4


async def test_a_refused_registration_ends_the_em_with_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.register_em_replies.append(IllegalId("invalid IP address", operation="Register"))
    async with em.running():
        await em.done.wait()
    assert isinstance(em.error, RegistrationRefused)
    assert "invalid IP address" in str(em.error)


async def test_executors_that_cannot_start_end_the_em_after_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.pool.open_error = ExecutorSpawnError("executor /nope could not start: No such file")
    async with em.running():
        await em.done.wait()
    assert isinstance(em.error, ExecutorsUnavailable)
    assert "/nope could not start" in str(em.error)
    assert em.scheduler.shutdown_calls == [[]]


async def test_a_broken_dispatch_loop_stops_the_em_gracefully_with_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _hang_em()
    em.pool = type(em.pool)(size=2, behaviours=dict(em.pool.behaviours))

    async def broken(request: TaskRequest) -> TaskOutcome:
        raise RuntimeError("a bug in the pool")

    em.pool.behaviours["broken"] = broken
    em.storage.register_replies.extend([context("three_seconds"), context("broken")])
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        em.scheduler.push(assignment(2))
        await em.done.wait()
    assert isinstance(em.error, DispatchFailed)
    assert "a bug in the pool" in str(em.error)
    # The other slot's task finished within the grace and was reported; both acknowledged.
    assert len(em.storage.successes) == 1
    assert em.scheduler.outstanding == []
