"""``PoolConfig``: how many executors to run, how to start them, and the limits they run under."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs

from spider.core.backoff import Backoff
from spider.executor.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    validate_max_frame_bytes,
    validate_package_dir,
)

DEFAULT_MAX_LOG_LINE_BYTES: Final = 64 * 1024
"""Upstream's ``max_log_line_bytes`` default."""

DEFAULT_RESPAWN_BACKOFF: Final = Backoff(initial=0.5, cap=30.0, multiplier=2.0, jitter=0.1)
"""Delays between attempts to start a replacement executor that keeps failing to start."""

MIN_MEMORY_LIMIT_BYTES: Final = 32 * 1024 * 1024
"""Below this a Python executor cannot even import its own modules."""


def _at_least(minimum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if value < minimum:
            raise ValueError(f"PoolConfig.{attribute.name} must be >= {minimum}, got {value!r}")

    return check


def _optional_at_least(minimum: int) -> Any:
    check = _at_least(minimum)

    def optional(_instance: object, attribute: attrs.Attribute[int], value: int | None) -> None:
        if value is not None:
            check(_instance, attribute, value)

    return optional


def _positive_seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"PoolConfig.{attribute.name} must be a positive number of seconds, got {value!r}"
        )


def _positive_rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"PoolConfig.{attribute.name} must be a positive number, got {value!r}")


def _frame_limit(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    validate_max_frame_bytes(value)


def _unlimited_retries(
    _instance: object, _attribute: attrs.Attribute[Backoff], value: Backoff
) -> None:
    if value.max_attempts is not None:
        raise ValueError(
            "PoolConfig.respawn_backoff must not set max_attempts: a slot keeps trying to start "
            "a replacement executor until the pool closes"
        )


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class PoolConfig:
    """The process pool's settings (the EM's ``task_executor`` section plus Spider-py's keys).

    Every timeout here is an edge timeout of the pool, named so it can be configured; the
    pool's internal waits are bounded by these.
    """

    package_dir: tuple[Path, ...] = attrs.field(converter=validate_package_dir)
    """The directories TDL packages are loaded from, searched in order: one path or several
    (``SPIDER_TDL_PACKAGE_DIR`` of executors)."""
    executors: int = attrs.field(default=1, validator=_at_least(1))
    """Number of slots: executors that run tasks at the same time, one task each."""
    bin_path: Path | None = attrs.field(default=None, converter=_optional_path)
    """The executor program (run with no arguments); ``None`` for the bundled
    ``spider-task-executor`` run by this interpreter (``python -m executor_bin``)."""
    inherited_env: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Variables copied from the EM's environment to executors. Executors inherit the whole
    environment anyway (as upstream's do); a listed variable that is unset is logged."""
    max_log_line_bytes: int = attrs.field(
        default=DEFAULT_MAX_LOG_LINE_BYTES, validator=_at_least(16)
    )
    """Longer stderr lines are truncated to this many bytes (and counted)."""
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_FRAME_BYTES, validator=_frame_limit)
    """The executor protocol's frame limit: bounds a task's inputs and its outputs."""
    recycle_after_tasks: int | None = attrs.field(default=None, validator=_optional_at_least(1))
    """Replace an executor (gracefully, between tasks) after it ran this many; ``None``: never."""
    memory_limit_bytes: int | None = attrs.field(
        default=None, validator=_optional_at_least(MIN_MEMORY_LIMIT_BYTES)
    )
    """``RLIMIT_AS`` (address space) of each executor and what it spawns; ``None``: unlimited."""
    warm_spare: bool = True
    """Keep one started executor per slot in reserve, so that replacing one (after a crash, a
    timeout or a recycle) does not make the next task wait for a start."""
    respawn_backoff: Backoff = attrs.field(
        default=DEFAULT_RESPAWN_BACKOFF, validator=_unlimited_retries
    )
    """Delays between failed attempts to start a replacement executor (retried forever)."""
    log_lines_per_second: float = attrs.field(default=1000.0, validator=_positive_rate)
    """Sustained rate of stderr lines forwarded per executor; lines beyond it are dropped and
    counted (the pipe is still drained)."""
    log_burst_lines: int = attrs.field(default=2000, validator=_at_least(1))
    """Lines an executor may write in a burst above the sustained rate."""
    start_timeout: float = attrs.field(default=30.0, validator=_positive_seconds)
    """Seconds an executor may take from spawn to its ``Ready`` frame."""
    shutdown_grace: float = attrs.field(default=2.0, validator=_positive_seconds)
    """Seconds an idle executor gets to exit after ``Shutdown`` before its group is killed."""
    stderr_drain_grace: float = attrs.field(default=1.0, validator=_positive_seconds)
    """Seconds an exited executor's stderr may stay open (held by an escaped grandchild)
    before the forwarder stops reading it."""

    def executor_command(self) -> tuple[str, ...] | None:
        """The executor command line, or ``None`` for the bundled executor."""
        return None if self.bin_path is None else (str(self.bin_path),)
