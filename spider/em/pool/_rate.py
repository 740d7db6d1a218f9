"""A token bucket for the stderr forwarder: a sustained rate of lines with a burst allowance."""

from __future__ import annotations

import attrs


@attrs.define(eq=False)
class LineRateLimiter:
    """Allows ``rate`` lines per second on average and ``burst`` lines at once.

    Time is passed in (``trio.current_time()`` in the forwarder) so that the policy is plain
    arithmetic, testable without a clock.
    """

    rate: float
    burst: float
    _tokens: float = attrs.field(init=False)
    _updated_at: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst

    def allow(self, now: float) -> bool:
        """Whether one more line may go out at time ``now`` (and take its token if so)."""
        if self._updated_at is not None:
            elapsed = max(0.0, now - self._updated_at)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
