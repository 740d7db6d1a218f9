"""Execution policies: retries, the delay between them, concurrent instances and timeouts of
one task.

The bounds are Spider's, checked when a policy is built, so an invalid policy cannot reach a
graph: at least one instance, both timeouts within 100 ms..24 h, and the hard timeout after the
soft one. The retry delay is Spider-py's own (Spider retries at once): a key of the policy's JSON
that Spider's reader ignores (docs/task-graph.md).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from spider.core.errors import TaskGraphError
from spider.core.ids import U32_MAX

MIN_TIMEOUT_MS = 100
MAX_TIMEOUT_MS = 86_400_000
DEFAULT_SOFT_TIMEOUT_MS = 150_000
DEFAULT_HARD_TIMEOUT_MS = 300_000
DEFAULT_FIRST_RETRY_DELAY_MS = 1_000
DEFAULT_MAX_RETRY_DELAY_MS = 60_000
_MAX_DOUBLINGS = 32


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class TimeoutPolicy:
    """When storage re-dispatches a slow task (soft) and when the EM kills it (hard)."""

    soft_timeout_ms: int = DEFAULT_SOFT_TIMEOUT_MS
    hard_timeout_ms: int = DEFAULT_HARD_TIMEOUT_MS

    def __attrs_post_init__(self) -> None:
        for name in ("soft_timeout_ms", "hard_timeout_ms"):
            value = getattr(self, name)
            if not _is_int(value) or not MIN_TIMEOUT_MS <= value <= MAX_TIMEOUT_MS:
                raise TaskGraphError(
                    f"invalid timeout policy: {name} is {value!r}; it must be an integer "
                    f"from {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS} (24 hours)"
                )
        if self.hard_timeout_ms <= self.soft_timeout_ms:
            raise TaskGraphError(
                f"invalid timeout policy: hard_timeout_ms ({self.hard_timeout_ms}) must be greater "
                f"than soft_timeout_ms ({self.soft_timeout_ms})"
            )


@attrs.frozen
class RetryDelay:
    """How long storage waits before it retries a failed task.

    ``first_ms`` before the first retry, doubling for each next one up to ``max_ms``; each wait
    is drawn at random between half and all of that, so tasks that failed together (on a
    dependency that went down) do not all come back at once. ``RetryDelay(0, 0)`` retries at
    once, as Spider does.
    """

    first_ms: int = DEFAULT_FIRST_RETRY_DELAY_MS
    max_ms: int = DEFAULT_MAX_RETRY_DELAY_MS

    def __attrs_post_init__(self) -> None:
        for name in ("first_ms", "max_ms"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= MAX_TIMEOUT_MS:
                raise TaskGraphError(
                    f"invalid retry delay: {name} is {value!r}; it must be an integer "
                    f"from 0 to {MAX_TIMEOUT_MS} (24 hours)"
                )
        if self.max_ms < self.first_ms:
            raise TaskGraphError(
                f"invalid retry delay: max_ms ({self.max_ms}) must be at least first_ms "
                f"({self.first_ms})"
            )

    def longest_ms(self, retry: int) -> int:
        """The longest wait before retry number ``retry`` (1 for the first)."""
        return min(self.max_ms, self.first_ms << min(max(retry - 1, 0), _MAX_DOUBLINGS))

    def draw_seconds(self, retry: int, uniform: Callable[[], float]) -> float:
        """The wait before retry number ``retry``: ``uniform()`` (in [0, 1)) picks it between
        half and all of ``longest_ms``."""
        return self.longest_ms(retry) * (0.5 + 0.5 * uniform()) / 1000


@attrs.frozen
class ExecutionPolicy:
    """How often a task may be retried and how long after a failure, how many instances may
    run at once, and its timeouts.

    A task fails its job on failure number ``max_num_retry + 1``.
    """

    max_num_retry: int = 0
    max_num_instances: int = 1
    timeout_policy: TimeoutPolicy = attrs.field(factory=TimeoutPolicy)
    retry_delay: RetryDelay = attrs.field(factory=RetryDelay)

    def __attrs_post_init__(self) -> None:
        if not _is_int(self.max_num_retry) or not 0 <= self.max_num_retry <= U32_MAX:
            raise TaskGraphError(
                f"invalid execution policy: max_num_retry is {self.max_num_retry!r}; "
                f"it must be an integer from 0 to {U32_MAX}"
            )
        if not _is_int(self.max_num_instances) or not 1 <= self.max_num_instances <= U32_MAX:
            raise TaskGraphError(
                f"invalid execution policy: max_num_instances is {self.max_num_instances!r}; "
                f"it must be an integer from 1 to {U32_MAX}"
            )
        if not isinstance(self.timeout_policy, TimeoutPolicy):
            raise TaskGraphError(
                "invalid execution policy: timeout_policy must be a TimeoutPolicy, "
                f"got {type(self.timeout_policy).__name__}"
            )
        if not isinstance(self.retry_delay, RetryDelay):
            raise TaskGraphError(
                "invalid execution policy: retry_delay must be a RetryDelay, "
                f"got {type(self.retry_delay).__name__}"
            )


DEFAULT_EXECUTION_POLICY = ExecutionPolicy()


def policy_or_default(policy: ExecutionPolicy | None) -> ExecutionPolicy:
    """``None`` means Spider's default policy; anything else must be an ``ExecutionPolicy``."""
    if policy is None:
        return DEFAULT_EXECUTION_POLICY
    if not isinstance(policy, ExecutionPolicy):
        raise TaskGraphError(
            f"execution_policy must be an ExecutionPolicy or None, got {type(policy).__name__}"
        )
    return policy
