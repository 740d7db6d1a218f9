"""``LineRateLimiter``: a burst at once, then the sustained rate."""

from __future__ import annotations

from spider.em.pool._rate import LineRateLimiter


def test_a_burst_goes_out_then_lines_are_refused_until_tokens_refill() -> None:
    limiter = LineRateLimiter(rate=10.0, burst=3)
    assert [limiter.allow(0.0) for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow(0.05) is False  # half a token
    assert limiter.allow(0.1) is True  # one token after 100 ms at 10 lines/s
    assert limiter.allow(0.1) is False


def test_idle_time_refills_at_most_the_burst() -> None:
    limiter = LineRateLimiter(rate=100.0, burst=2)
    assert limiter.allow(0.0)
    assert limiter.allow(0.0)
    assert [limiter.allow(60.0) for _ in range(3)] == [True, True, False]


def test_a_clock_going_backwards_refills_nothing() -> None:
    limiter = LineRateLimiter(rate=1.0, burst=1)
    assert limiter.allow(10.0)
    assert not limiter.allow(5.0)
    assert not limiter.allow(5.5)
