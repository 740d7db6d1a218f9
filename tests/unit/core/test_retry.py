"""``spider.core.retry`` under Trio's autojump clock: exact attempt times and when it gives up."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from spider.core.backoff import Backoff
from spider.core.retry import (
    FailedAttempt,
    any_of,
    at_most,
    retry,
    retry_if,
    retry_on,
    then_cap,
)

DOUBLING = Backoff(initial=1.0, cap=4.0)
"""1, 2, 4, 4, ... seconds, no jitter."""


class Flaky(Exception):
    """A failure worth retrying."""


class Broken(Exception):
    """A failure retrying cannot cure."""


class ScriptedCall:
    """An attempt that raises the scripted errors in turn, then returns ``"done"``; records the
    start time of every attempt. An entry may be ``(seconds, error)`` for a slow attempt."""

    def __init__(self, *script: Exception | tuple[float, Exception]) -> None:
        self._script = list(script)
        self.started_at: list[float] = []

    async def __call__(self) -> str:
        self.started_at.append(trio.current_time())
        if not self._script:
            return "done"
        step = self._script.pop(0)
        duration, error = step if isinstance(step, tuple) else (0.0, step)
        await trio.sleep(duration)
        raise error


async def test_retries_after_each_delay_until_it_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall(Flaky(), Flaky(), Flaky(), Flaky())

    result = await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky))

    assert result == "done"
    assert call.started_at == [0, 1, 3, 7, 11]


async def test_a_failure_the_rule_refuses_propagates_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall(Flaky(), Broken("no"))

    with pytest.raises(Broken, match="no"):
        await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky))

    assert call.started_at == [0, 1]
    assert trio.current_time() == 1


async def test_the_last_failure_propagates_once_the_delays_are_used_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall(Flaky("1"), Flaky("2"), Flaky("3"), Flaky("4"))

    with pytest.raises(Flaky, match="3"):
        await retry(
            call, delays=Backoff(initial=1.0, cap=4.0, max_attempts=3).delays, rule=retry_on(Flaky)
        )

    assert call.started_at == [0, 1, 3]


async def test_on_retry_hears_every_failed_attempt_before_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall((0.5, Flaky("a")), Flaky("b"))
    heard: list[tuple[str, int, float, float, float]] = []

    def on_retry(failed: FailedAttempt) -> None:
        heard.append(
            (str(failed.error), failed.attempt, failed.delay, failed.ran_for, trio.current_time())
        )

    await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky), on_retry=on_retry)

    assert heard == [("a", 1, 1.0, 0.5, 0.5), ("b", 2, 2.0, 0.0, 1.5)]


async def test_a_long_attempt_starts_the_delays_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Delays 1, 2, 4; then an attempt that ran 10 s: back to 1.
    call = ScriptedCall(Flaky(), Flaky(), Flaky(), (10.0, Flaky()), Flaky())

    await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky), fresh_after=10.0)

    assert call.started_at == [0, 1, 3, 7, 18, 20]


async def test_a_shorter_attempt_keeps_the_backoff_growing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall(Flaky(), Flaky(), (9.0, Flaky()), Flaky())

    await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky), fresh_after=10.0)

    assert call.started_at == [0, 1, 3, 16, 20]


async def test_the_delays_are_asked_for_only_after_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = iter([5.0, 6.0, 7.0])
    asked = 0

    def delays() -> Iterator[float]:
        nonlocal asked
        asked += 1
        return shared

    await retry(ScriptedCall(), delays=delays, rule=retry_on(Flaky))
    assert asked == 0

    # Two operations sharing one iterator continue its sequence: 5, then 6.
    first, second = ScriptedCall(Flaky()), ScriptedCall(Flaky())
    await retry(first, delays=delays, rule=retry_on(Flaky))
    await retry(second, delays=delays, rule=retry_on(Flaky))
    assert first.started_at == [0, 5]
    assert second.started_at == [5, 11]


async def test_cancellation_ends_the_wait_and_makes_no_more_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = ScriptedCall(*[Flaky()] * 10)

    with trio.move_on_after(2.5):
        await retry(call, delays=DOUBLING.delays, rule=retry_on(Flaky))

    assert call.started_at == [0, 1]


async def test_at_most_gives_up_on_the_nth_counted_failure_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Broken is retried twice (the third propagates); Flaky, between them, is not counted.
    call = ScriptedCall(Broken("1"), Flaky(), Flaky(), Broken("2"), Broken("3"), Flaky())
    rule = any_of(retry_on(Flaky), at_most(3, retry_on(Broken)))

    with pytest.raises(Broken, match="3"):
        await retry(call, delays=DOUBLING.delays, rule=rule)

    assert len(call.started_at) == 5


@given(
    attempts=st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
    failures=st.lists(st.booleans(), max_size=20),
)
def test_at_most_answers_like_a_counter(attempts: int | None, failures: list[bool]) -> None:
    """True in ``failures`` is a failure the inner rule accepts; False one it refuses."""
    rule = at_most(attempts, retry_if(lambda error: isinstance(error, Flaky)))
    counted = 0
    for accepted in failures:
        counted += accepted
        expected = accepted and (attempts is None or counted < attempts)
        assert rule(Flaky() if accepted else Broken()) is expected


def test_at_most_rejects_fewer_than_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts >= 1"):
        at_most(0, retry_on(Flaky))


@given(
    initial=st.floats(min_value=0.01, max_value=10.0),
    growth=st.floats(min_value=1.0, max_value=4.0),
    room=st.floats(min_value=1.0, max_value=100.0),
    max_attempts=st.integers(min_value=1, max_value=12),
)
def test_then_cap_continues_a_limited_backoff_at_its_cap(
    initial: float, growth: float, room: float, max_attempts: int
) -> None:
    backoff = Backoff(
        initial=initial, cap=initial * room, multiplier=growth, max_attempts=max_attempts
    )

    delays = list(itertools.islice(then_cap(backoff), max_attempts + 20))

    assert delays[: max_attempts - 1] == list(backoff.delays())
    assert delays[max_attempts - 1 :] == [backoff.cap] * 21
