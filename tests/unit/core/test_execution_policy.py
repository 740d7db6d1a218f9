"""Execution policies carry Spider's defaults and are validated when built."""

from __future__ import annotations

import pytest
from hypothesis import given

from spider.core.errors import TaskGraphError
from spider.core.ids import U32_MAX
from spider.core.task_graph import (
    DEFAULT_EXECUTION_POLICY,
    ExecutionPolicy,
    RetryDelay,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
)

from .core_strategies import retry_delays, timeout_policies


def test_defaults_are_spiders() -> None:
    policy = ExecutionPolicy()
    assert (policy.max_num_retry, policy.max_num_instances) == (0, 1)
    assert policy.timeout_policy == TimeoutPolicy(150_000, 300_000)
    assert policy == DEFAULT_EXECUTION_POLICY


def test_a_termination_task_without_a_policy_gets_the_default() -> None:
    task = TerminationTaskDescriptor(TdlContext("pkg", "commit"))
    assert task.execution_policy == DEFAULT_EXECUTION_POLICY


@pytest.mark.parametrize(
    ("soft", "hard"), [(100, 101), (100, 86_400_000), (86_399_999, 86_400_000)]
)
def test_timeouts_at_the_bounds_are_accepted(soft: int, hard: int) -> None:
    assert TimeoutPolicy(soft, hard).hard_timeout_ms == hard


@pytest.mark.parametrize(
    ("soft", "hard", "message"),
    [
        (99, 300_000, "soft_timeout_ms is 99"),
        (100, 86_400_001, "hard_timeout_ms is 86400001"),
        (0, 300_000, "soft_timeout_ms is 0"),
        (1000, 1000, r"hard_timeout_ms \(1000\) must be greater than soft_timeout_ms \(1000\)"),
        (2000, 1000, "must be greater"),
        (True, 300_000, "soft_timeout_ms is True"),
        (150_000.0, 300_000, "must be an integer"),
    ],
)
def test_invalid_timeouts_are_rejected(soft: int, hard: int, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        TimeoutPolicy(soft, hard)


@pytest.mark.parametrize(
    ("retries", "instances", "message"),
    [
        (0, 0, "max_num_instances is 0"),
        (-1, 1, "max_num_retry is -1"),
        (U32_MAX + 1, 1, "max_num_retry"),
        (0, U32_MAX + 1, "max_num_instances"),
        (False, 1, "max_num_retry is False"),
    ],
)
def test_invalid_counts_are_rejected(retries: int, instances: int, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        ExecutionPolicy(retries, instances)


def test_u32_extremes_are_accepted() -> None:
    policy = ExecutionPolicy(U32_MAX, U32_MAX)
    assert (policy.max_num_retry, policy.max_num_instances) == (U32_MAX, U32_MAX)


def test_the_timeout_policy_must_be_one() -> None:
    with pytest.raises(TaskGraphError, match="timeout_policy must be a TimeoutPolicy"):
        ExecutionPolicy(0, 1, (100, 200))  # type: ignore[arg-type]


@given(timeout_policies())
def test_generated_policies_satisfy_the_rules(policy: TimeoutPolicy) -> None:
    assert 100 <= policy.soft_timeout_ms < policy.hard_timeout_ms <= 86_400_000


def test_retries_wait_by_default_growing_to_a_minute() -> None:
    delay = ExecutionPolicy().retry_delay
    assert [delay.longest_ms(retry) for retry in range(1, 9)] == [
        1_000,
        2_000,
        4_000,
        8_000,
        16_000,
        32_000,
        60_000,
        60_000,
    ]
    assert delay.longest_ms(10**9) == 60_000  # no overflow for absurd retry counts


def test_each_wait_is_drawn_between_half_and_all_of_the_longest() -> None:
    delay = RetryDelay(1_000, 60_000)
    assert delay.draw_seconds(2, lambda: 0.0) == 1.0
    assert delay.draw_seconds(2, lambda: 0.5) == 1.5
    assert RetryDelay(0, 0).draw_seconds(5, lambda: 0.99) == 0.0


@pytest.mark.parametrize(
    ("first", "longest", "message"),
    [
        (-1, 10, "first_ms is -1"),
        (10, 86_400_001, "max_ms is 86400001"),
        (2_000, 1_000, r"max_ms \(1000\) must be at least first_ms \(2000\)"),
        (True, 10, "first_ms is True"),
    ],
)
def test_invalid_retry_delays_are_rejected(first: int, longest: int, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        RetryDelay(first, longest)


def test_the_retry_delay_must_be_one() -> None:
    with pytest.raises(TaskGraphError, match="retry_delay must be a RetryDelay"):
        ExecutionPolicy(retry_delay=1_000)  # type: ignore[arg-type]


@given(retry_delays())
def test_generated_retry_delays_never_wait_past_their_cap(delay: RetryDelay) -> None:
    for retry in (1, 2, 40):
        assert delay.first_ms <= delay.longest_ms(retry) or delay.first_ms == 0
        assert delay.longest_ms(retry) <= delay.max_ms
