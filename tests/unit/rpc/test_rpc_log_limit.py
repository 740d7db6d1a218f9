"""``PeerLogLimit``: a few refused-call lines per client host per window, the rest counted and
reported on the next line logged for that host."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spider.rpc._log_limit import PeerLogLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_host_logs_burst_lines_per_window_then_says_how_many_it_left_out() -> None:
    clock = Clock()
    limit = PeerLogLimit(burst=3, window_sec=60.0, clock=clock)
    first_window = [limit.admit(("10.0.0.1", port)) for port in range(10)]
    # Another host has its own budget, and ports do not make hosts.
    assert [limit.admit(("10.0.0.2", 1)) for _ in range(3)] == [0, 0, 0]
    clock.now = 59.9
    assert limit.admit(("10.0.0.1", 99)) is None
    clock.now = 60.0
    assert limit.admit(("10.0.0.1", 1)) == 8  # 7 in the first window and 1 at 59.9
    assert first_window == [0, 0, 0, None, None, None, None, None, None, None]


def test_a_quiet_host_is_never_held_back() -> None:
    clock = Clock()
    limit = PeerLogLimit(burst=1, window_sec=10.0, clock=clock)
    for step in range(5):
        clock.now = step * 10.0
        assert limit.admit(("10.0.0.1", 5)) == 0


def test_hosts_past_the_cap_forget_the_oldest_window() -> None:
    clock = Clock()
    limit = PeerLogLimit(burst=1, window_sec=60.0, max_peers=2, clock=clock)
    assert limit.admit("a") == 0
    assert limit.admit("a") is None
    assert limit.admit("b") == 0
    assert limit.admit("c") == 0  # "a" is forgotten, with its count; "b" is not
    assert limit.admit("b") is None
    assert limit.admit("a") == 0


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["h1", "h2", "h3"]), st.floats(0, 5, allow_nan=False)),
        max_size=200,
    ),
    burst=st.integers(1, 5),
)
def test_every_line_is_logged_or_counted_in_a_later_line_or_still_pending(
    events: list[tuple[str, float]], burst: int
) -> None:
    clock = Clock()
    limit = PeerLogLimit(burst=burst, window_sec=10.0, clock=clock)
    logged: dict[str, int] = {}
    reported: dict[str, int] = {}
    sent: dict[str, int] = {}
    for host, pause in events:
        clock.now += pause
        sent[host] = sent.get(host, 0) + 1
        left_out = limit.admit(host)
        if left_out is not None:
            logged[host] = logged.get(host, 0) + 1
            reported[host] = reported.get(host, 0) + left_out
    clock.now += 10.5
    for host in sent:  # one more line per host after the windows end reports the rest
        left_out = limit.admit(host)
        assert left_out is not None
        assert logged[host] + reported[host] + left_out == sent[host]
