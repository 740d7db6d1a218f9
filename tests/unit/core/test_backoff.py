"""``Backoff``: exact, capped delay sequences with injectable jitter."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core.backoff import Backoff


class _FixedRandom(random.Random):
    """A random source whose every draw is the same fraction of the range."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self._fraction = fraction

    def random(self) -> float:
        return self._fraction


def test_delays_double_then_stay_at_the_cap_plus_jitter() -> None:
    policy = Backoff(initial=0.1, multiplier=2.0, cap=1.0, jitter=0.02, max_attempts=7)

    delays = list(policy.delays(_FixedRandom(0.5)))

    assert delays == pytest.approx([0.11, 0.21, 0.41, 0.81, 1.01, 1.01])


def test_seeded_jitter_is_reproducible_and_bounded() -> None:
    policy = Backoff(initial=0.5, multiplier=3.0, cap=4.0, jitter=0.25, max_attempts=9)
    bases = [0.5, 1.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]

    first = list(policy.delays(random.Random(1234)))
    again = list(policy.delays(random.Random(1234)))
    other = list(policy.delays(random.Random(99)))

    assert first == again
    assert first != other
    assert len(first) == len(bases)
    for delay, base in zip(first, bases, strict=True):
        assert base <= delay <= base + 0.25


def test_max_attempts_counts_the_first_attempt() -> None:
    assert list(Backoff(initial=1.0, cap=1.0, max_attempts=1).delays()) == []
    assert list(Backoff(initial=1.0, cap=8.0, max_attempts=4).delays()) == [1.0, 2.0, 4.0]


def test_without_max_attempts_delays_go_on_forever_without_overflow() -> None:
    policy = Backoff(initial=1e-3, multiplier=10.0, cap=60.0)

    delays = list(itertools.islice(policy.delays(), 5000))

    assert len(delays) == 5000
    assert delays[:4] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert delays[-1] == 60.0


def test_a_multiplier_of_one_is_a_constant_delay() -> None:
    policy = Backoff(initial=0.5, multiplier=1.0, cap=0.5, max_attempts=4)

    assert list(policy.delays()) == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"initial": 0.0, "cap": 1.0}, "initial"),
        ({"initial": -1.0, "cap": 1.0}, "initial"),
        ({"initial": math.nan, "cap": 1.0}, "initial"),
        ({"initial": 1.0, "cap": math.inf}, "cap"),
        ({"initial": 2.0, "cap": 1.0}, "below"),
        ({"initial": 1.0, "cap": 2.0, "multiplier": 0.5}, "multiplier"),
        ({"initial": 1.0, "cap": 2.0, "jitter": -0.1}, "jitter"),
        ({"initial": 1.0, "cap": 2.0, "max_attempts": 0}, "max_attempts"),
    ],
)
def test_invalid_policies_are_refused(fields: dict[str, float], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Backoff(**fields)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(
    initial=st.floats(min_value=1e-4, max_value=10.0),
    growth=st.floats(min_value=1.0, max_value=5.0),
    cap_factor=st.floats(min_value=1.0, max_value=1e4),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempts=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_delay_is_its_capped_exponential_plus_at_most_the_jitter(
    initial: float, growth: float, cap_factor: float, jitter: float, attempts: int, seed: int
) -> None:
    cap = initial * cap_factor
    policy = Backoff(
        initial=initial, multiplier=growth, cap=cap, jitter=jitter, max_attempts=attempts
    )

    delays = list(policy.delays(random.Random(seed)))

    assert len(delays) == attempts - 1
    for n, delay in enumerate(delays):
        expected_base = min(cap, initial * growth**n)
        assert expected_base * (1 - 1e-9) <= delay <= expected_base * (1 + 1e-9) + jitter
