"""``ShutdownTrigger``: stop requests, forcing, and the deadlines it pushes."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from spider.em.errors import LivenessLost
from spider.em.shutdown import ShutdownTrigger


async def test_a_request_cancels_bound_scopes_and_sets_the_task_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trigger = ShutdownTrigger(grace=30.0, forced_bound=2.0)
    deadlines: list[float] = []
    with trigger.governing_tasks(deadlines.append), trigger.cancelled_on_stop() as scope:
        trigger.request("SIGTERM")
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert deadlines == [30.0]
    assert trigger.requested
    assert not trigger.forced
    assert trigger.reason == "SIGTERM"
    # Scopes entered after the request are cancelled at once.
    with trigger.cancelled_on_stop() as late:
        await trio.sleep_forever()
    assert late.cancelled_caught


async def test_a_second_request_forces_bounds_and_kills_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trigger = ShutdownTrigger(grace=30.0, forced_bound=2.0)
    deadlines: list[float] = []
    with trio.CancelScope() as reports, trigger.bounded_when_forced(reports):
        with trigger.governing_tasks(deadlines.append):
            trigger.request("SIGTERM")
            await trio.sleep(5.0)
            trigger.request("SIGTERM")
            trigger.request("SIGINT")  # ignored: already forced
        assert reports.deadline == 7.0
        await trio.sleep_forever()
    assert trio.current_time() == 7.0
    assert deadlines == [30.0, 5.0]
    assert trigger.forced
    assert "SIGTERM again" in trigger.kill_message()
    # A scope bound after forcing gets the same absolute bound.
    scope = trio.CancelScope()
    with trigger.bounded_when_forced(scope):
        assert scope.deadline == 7.0


async def test_sinks_bound_after_a_request_get_its_deadline_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trigger = ShutdownTrigger(grace=4.0)
    trigger.request("SIGINT")
    deadlines: list[float] = []
    with trigger.governing_tasks(deadlines.append):
        pass
    assert deadlines == [4.0]
    assert trigger.kill_message() == "killed at shutdown after the 4 s grace"
    unbound = trio.CancelScope()
    with trigger.bounded_when_forced(unbound):
        assert math.isinf(unbound.deadline)


async def test_fail_records_the_first_error_and_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trigger = ShutdownTrigger()
    first = LivenessLost("declared dead")
    trigger.fail(first, force=False)
    assert trigger.requested
    assert not trigger.forced
    trigger.fail(LivenessLost("later"), force=True)
    assert trigger.error is first
    assert trigger.forced


def test_negative_budgets_are_rejected() -> None:
    with pytest.raises(ValueError, match="grace must be >= 0"):
        ShutdownTrigger(grace=-1.0)
