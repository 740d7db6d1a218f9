"""``EmStop``: stop requests, forcing, and the deadlines that the owners of scopes race."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from spider.em.errors import LivenessLost
from spider.em.stop import EmStop, StopPhase


async def _follow(stop: EmStop, deadlines: list[float], nursery: trio.Nursery) -> None:
    """Feed the task deadline into ``deadlines``, as the runtime feeds the pool."""
    nursery.start_soon(stop.follow_task_deadline, deadlines.append)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_request_cancels_waits_and_sets_the_task_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = EmStop(grace=30.0, forced_bound=2.0)
    deadlines: list[float] = []
    async with trio.open_nursery() as nursery:
        await _follow(stop, deadlines, nursery)
        async with stop.cancelled_on_stop() as scope:
            stop.request("SIGTERM")
            await trio.sleep(100.0)  # a stop that failed to cancel shows as time passing
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert scope.cancelled_caught
    assert trio.current_time() == 0.0
    assert deadlines == [30.0]
    assert stop.requested
    assert not stop.forced
    assert stop.current.phase is StopPhase.STOPPING
    assert stop.reason == "SIGTERM"
    # Waits that start after the request are cancelled at once.
    async with stop.cancelled_on_stop() as late:
        await trio.sleep(100.0)  # a stop that failed to cancel shows as time passing
    assert late.cancelled_caught


async def test_a_loop_racer_cancels_its_current_wait_and_later_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = EmStop()
    async with stop.racing_each_wait() as racer:
        with racer.cancelled_on_stop() as before:
            await trio.sleep(1.0)
        assert not before.cancelled_caught
        with racer.cancelled_on_stop() as waiting:
            stop.request("SIGTERM")
            await trio.sleep(100.0)  # a stop that failed to cancel shows as time passing
        assert waiting.cancelled_caught
        with racer.cancelled_on_stop() as late:
            await trio.sleep(100.0)  # a stop that failed to cancel shows as time passing
        assert late.cancelled_caught
    assert trio.current_time() == 1.0


async def test_a_second_request_forces_bounds_and_kills_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = EmStop(grace=30.0, forced_bound=2.0)
    deadlines: list[float] = []
    async with trio.open_nursery() as nursery:
        await _follow(stop, deadlines, nursery)
        async with stop.bounded_when_forced() as reports:
            stop.request("SIGTERM")
            await trio.sleep(5.0)
            stop.request("SIGTERM")
            stop.request("SIGINT")  # ignored: already forced
            await trio.testing.wait_all_tasks_blocked()
            assert reports.deadline == 7.0
            await trio.sleep(100.0)  # a stop that failed to cancel shows as time passing
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 7.0
    assert deadlines == [30.0, 5.0]
    assert stop.forced
    assert "SIGTERM again" in stop.kill_message()
    # A scope bounded after forcing gets the same absolute bound.
    async with stop.bounded_when_forced(deadline=100.0) as scope:
        await trio.testing.wait_all_tasks_blocked()
        assert scope.deadline == 7.0


async def test_owners_that_start_after_a_request_get_its_deadline_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = EmStop(grace=4.0)
    stop.request("SIGINT")
    deadlines: list[float] = []
    async with trio.open_nursery() as nursery:
        await _follow(stop, deadlines, nursery)
        nursery.cancel_scope.cancel()
    assert deadlines == [4.0]
    assert stop.kill_message() == "killed at shutdown after the 4 s grace"
    async with stop.bounded_when_forced() as unbound:
        await trio.testing.wait_all_tasks_blocked()
        assert math.isinf(unbound.deadline)


async def test_fail_records_the_first_error_and_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = EmStop()
    first = LivenessLost("declared dead")
    stop.fail(first, force=False)
    assert stop.current.phase is StopPhase.STOPPING
    stop.fail(LivenessLost("later"), force=True)
    assert stop.error is first
    assert stop.forced
    assert stop.reason == "declared dead"


def test_negative_budgets_are_rejected() -> None:
    with pytest.raises(ValueError, match="grace must be >= 0"):
        EmStop(grace=-1.0)
