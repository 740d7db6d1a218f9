"""``supervise`` and ``run_suppressing_errors`` under Trio's autojump clock: exact restart times."""

from __future__ import annotations

import functools
import logging

import pytest
import trio
import trio.testing

from spider.core.backoff import Backoff
from spider.core.errors import FatalError
from spider.core.supervision import LoopReturnedError, run_suppressing_errors, supervise


class ScriptedLoop:
    """A durable loop whose runs follow a script: each entry is how long the run lasts and how
    it ends ("raise", "return" or "forever"). Records the start time of every run and sets
    ``done`` when the script is used up."""

    def __init__(self, *runs: tuple[float, str], call_started: bool = True) -> None:
        self._runs = list(runs)
        self._call_started = call_started
        self.started_at: list[float] = []
        self.cancelled = False
        self.done = trio.Event()

    async def __call__(self, *, task_status: trio.TaskStatus[str]) -> None:
        self.started_at.append(trio.current_time())
        if self._call_started:
            task_status.started(f"run {len(self.started_at)}")
        duration, ending = self._runs.pop(0)
        if not self._runs:
            self.done.set()
        try:
            await trio.sleep(duration)
            if ending == "forever":
                await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled = True
            raise
        if ending == "raise":
            raise ValueError(f"run {len(self.started_at)} failed")


async def _supervise_until_done(loop: ScriptedLoop) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervise, "scripted", loop)
        await loop.done.wait()
        nursery.cancel_scope.cancel()


async def test_crashing_loop_restarts_after_1s_doubling_to_60s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop(*[(0.0, "raise")] * 9, (0.0, "forever"))

    await _supervise_until_done(loop)

    # Delays 1, 2, 4, 8, 16, 32, then 60 (capped), 60, 60.
    assert loop.started_at == [0, 1, 3, 7, 15, 31, 63, 123, 183, 243]


async def test_a_healthy_run_resets_the_backoff(autojump_clock: trio.testing.MockClock) -> None:
    loop = ScriptedLoop(
        (0.0, "raise"),  # t=0, restart after 1
        (0.0, "raise"),  # t=1, restart after 2
        (299.0, "raise"),  # t=3, ran 299 s: not healthy, restart after 4
        (300.0, "raise"),  # t=306, ran 300 s: healthy, restart after 1
        (0.0, "raise"),  # t=607, restart after 2
        (0.0, "forever"),  # t=609
    )

    await _supervise_until_done(loop)

    assert loop.started_at == [0, 1, 3, 306, 607, 609]


async def test_a_clean_return_is_logged_and_restarted(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    loop = ScriptedLoop((5.0, "return"), (0.0, "forever"))

    await _supervise_until_done(loop)

    assert loop.started_at == [0, 6]
    [record] = [r for r in caplog.records if r.name == "spider.supervision"]
    assert record.levelno == logging.ERROR
    assert "returned after 5.000 s but should run until cancelled" in record.getMessage()
    assert record.__dict__["restart_delay_s"] == 1.0


async def test_failures_are_logged_with_traceback_and_fields(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    loop = ScriptedLoop((2.0, "raise"), (0.0, "forever"))

    await _supervise_until_done(loop)

    [record] = [r for r in caplog.records if r.name == "spider.supervision"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert record.__dict__["loop_name"] == "scripted"
    assert record.__dict__["ran_for_s"] == 2.0
    assert record.__dict__["restart_delay_s"] == 1.0


async def test_cancellation_passes_through_without_restart_or_log(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    loop = ScriptedLoop((0.0, "forever"))

    with trio.move_on_after(10.0) as scope:
        await supervise("scripted", loop)

    assert scope.cancelled_caught
    assert loop.cancelled
    assert loop.started_at == [0]
    assert not [r for r in caplog.records if r.name == "spider.supervision"]


async def test_nursery_start_returns_the_first_runs_started_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop((1.0, "raise"), (1.0, "raise"), (0.0, "forever"))

    async with trio.open_nursery() as nursery:
        value = await nursery.start(supervise, "scripted", loop)
        await loop.done.wait()
        nursery.cancel_scope.cancel()

    assert value == "run 1"
    # Restarted runs call started() again; that must not disturb anything.
    assert loop.started_at == [0, 2, 5]


async def test_a_failure_before_the_first_started_propagates_to_nursery_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop((1.0, "raise"), call_started=False)

    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="run 1 failed"):
            await nursery.start(supervise, "scripted", loop)

    assert loop.started_at == [0]


async def test_a_return_before_the_first_started_is_an_error_for_nursery_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop((1.0, "return"), call_started=False)

    async with trio.open_nursery() as nursery:
        with pytest.raises(LoopReturnedError, match=r"before calling task_status\.started"):
            await nursery.start(supervise, "scripted", loop)


async def test_started_with_start_soon_even_early_failures_are_supervised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop((0.0, "raise"), (0.0, "forever"), call_started=False)

    await _supervise_until_done(loop)

    assert loop.started_at == [0, 1]


async def test_max_attempts_bounds_the_runs(autojump_clock: trio.testing.MockClock) -> None:
    loop = ScriptedLoop(*[(0.0, "raise")] * 3)
    policy = Backoff(initial=1.0, cap=60.0, max_attempts=3)

    with pytest.raises(ValueError, match="run 3 failed"):
        await supervise("scripted", loop, backoff=policy)

    assert loop.started_at == [0, 1, 3]


async def test_a_loop_that_keeps_returning_runs_out_of_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loop = ScriptedLoop(*[(0.0, "return")] * 2)

    with pytest.raises(LoopReturnedError, match="keeps returning"):
        await supervise("scripted", loop, backoff=Backoff(initial=1.0, cap=1.0, max_attempts=2))

    assert loop.started_at == [0, 1]


async def test_exception_groups_are_supervised_but_base_exceptions_pass(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[float] = []

    async def loop(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(trio.current_time())
        if len(runs) == 1:
            raise ExceptionGroup("children failed", [ValueError("a"), KeyError("b")])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await supervise("grouped", loop)

    assert runs == [0, 1]


_TWO_ATTEMPTS = Backoff(initial=1.0, cap=1.0, max_attempts=2)


class _Lost(FatalError):
    """A fatal condition of a test loop."""


async def test_a_fatal_error_is_not_restarted_and_propagates(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[float] = []

    async def loop(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep(5)
        raise _Lost("declared dead")

    with pytest.RaisesGroup(pytest.RaisesExc(_Lost, match="declared dead")):
        async with trio.open_nursery() as nursery:
            # Two attempts at most, so that a restart shows in ``runs`` rather than hanging.
            await nursery.start(functools.partial(supervise, "fatal", loop, backoff=_TWO_ATTEMPTS))

    assert runs == [0]
    assert trio.current_time() == 5
    [record] = [r for r in caplog.records if r.name == "spider.supervision"]
    assert "fatal error" in record.getMessage()
    assert "declared dead" in record.getMessage()


async def test_a_fatal_error_inside_a_group_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[float] = []

    async def loop(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(trio.current_time())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise _Lost("session went backwards")

    with pytest.RaisesGroup(pytest.RaisesGroup(_Lost)):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(supervise, "fatal in a group", loop, backoff=_TWO_ATTEMPTS)
            )

    assert runs == [0]


async def test_supervise_passes_its_arguments(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, int]] = []

    async def loop(name: str, count: int, *, task_status: trio.TaskStatus[None]) -> None:
        seen.append((name, count))
        task_status.started()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(supervise, "with args", loop, "a", 2)
        nursery.cancel_scope.cancel()

    assert seen == [("a", 2)]


async def test_run_suppressing_errors_logs_a_failure_and_returns(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails(reason: str) -> None:
        await trio.sleep(1)
        raise RuntimeError(reason)

    await run_suppressing_errors("best effort", fails, "disk full")

    assert trio.current_time() == 1
    [record] = [r for r in caplog.records if r.name == "spider.supervision"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "disk full"
    assert record.__dict__["loop_name"] == "best effort"


async def test_run_suppressing_errors_lets_cancellation_through(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.move_on_after(1) as scope:
        await run_suppressing_errors("best effort", trio.sleep_forever)

    assert scope.cancelled_caught
    assert not caplog.records
