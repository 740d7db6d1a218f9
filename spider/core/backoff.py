"""``Backoff``: capped exponential delays with jitter, for retries and restarts.

The policy is data; the waiting is the caller's (``trio.sleep(delay)``), so tests under Trio's
``autojump_clock`` see exact times. Delay ``n`` (0-based) is::

    min(cap, initial * multiplier**n) + uniform(0, jitter)

Jitter is added after the cap, as upstream Spider's retry helper does (100 ms doubling, capped at
3 s, plus 0-20 ms), so that many clients retrying together spread out even once they are capped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import attrs


def _positive_finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"Backoff.{attribute.name} must be a positive number of seconds, got {value!r}"
        )


def _at_least_one(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 1 and math.isfinite(value)):
        raise ValueError(
            f"Backoff.{attribute.name} must be >= 1 so delays never shrink, got {value!r}"
        )


def _non_negative_finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"Backoff.{attribute.name} must be >= 0 seconds, got {value!r}")


def _optional_attempts(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ValueError(
            f"Backoff.max_attempts counts the first attempt too, so it must be >= 1 "
            f"(or None for no limit), got {value!r}"
        )


@attrs.frozen
class Backoff:
    """A capped exponential backoff policy with additive jitter.

    ``max_attempts`` counts every attempt, the first one included: a policy with
    ``max_attempts=3`` yields two delays. ``None`` means retry forever.
    """

    initial: float = attrs.field(validator=_positive_finite)
    """Delay before the second attempt, in seconds."""
    cap: float = attrs.field(validator=_positive_finite)
    """Largest delay before jitter, in seconds."""
    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    """Growth factor from one delay to the next."""
    jitter: float = attrs.field(default=0.0, validator=_non_negative_finite)
    """Upper bound of the uniform random extra added to every delay, in seconds."""
    max_attempts: int | None = attrs.field(default=None, validator=_optional_attempts)
    """Total attempts allowed, the first included; ``None`` for unlimited."""

    def __attrs_post_init__(self) -> None:
        if self.cap < self.initial:
            raise ValueError(
                f"Backoff.cap ({self.cap!r} s) is below Backoff.initial ({self.initial!r} s); "
                "raise the cap or lower the initial delay"
            )

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delay to wait before each retry, in order.

        The iterator is finite when ``max_attempts`` is set (``max_attempts - 1`` delays) and
        infinite otherwise. ``rng`` is the jitter's random source; pass a seeded
        ``random.Random`` for reproducible delays.
        """
        source = rng if rng is not None else random.Random()
        retries = math.inf if self.max_attempts is None else self.max_attempts - 1
        base = self.initial
        yielded = 0
        while yielded < retries:
            extra = source.uniform(0.0, self.jitter) if self.jitter else 0.0
            yield base + extra
            yielded += 1
            # Grow from the previous capped value rather than computing multiplier**n, which
            # would overflow a float after a few thousand retries.
            base = min(self.cap, base * self.multiplier)
