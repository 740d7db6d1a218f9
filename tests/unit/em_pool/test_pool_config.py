"""``PoolConfig`` validation: every bad value is refused with the field's name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from spider.core.backoff import Backoff
from spider.em.pool import PoolConfig


def test_defaults_follow_upstream_and_the_bundled_executor() -> None:
    config = PoolConfig(package_dir="/opt/packages")
    assert config.package_dir == (Path("/opt/packages"),)
    assert (config.executors, config.max_log_line_bytes, config.max_frame_bytes) == (
        1,
        65536,
        8 * 1024 * 1024,
    )
    assert config.executor_command() is None
    assert config.warm_spare
    assert config.recycle_after_tasks is None
    assert config.memory_limit_bytes is None


def test_bin_path_is_the_command_run_without_arguments() -> None:
    config = PoolConfig(package_dir="/p", bin_path=sys.executable, inherited_env=["A", "B"])
    assert config.executor_command() == (sys.executable,)
    assert config.inherited_env == ("A", "B")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("executors", 0),
        ("max_log_line_bytes", 8),
        ("max_frame_bytes", 100),
        ("recycle_after_tasks", 0),
        ("memory_limit_bytes", 1024),
        ("log_lines_per_second", 0.0),
        ("log_burst_lines", 0),
        ("start_timeout", float("inf")),
        ("shutdown_grace", -1.0),
        ("stderr_drain_grace", 0.0),
        ("respawn_backoff", Backoff(initial=1.0, cap=2.0, max_attempts=3)),
        ("package_dir", []),
    ],
)
def test_invalid_values_are_refused_with_the_field_name(field: str, value: Any) -> None:
    expected = "frame limit" if field == "max_frame_bytes" else field
    with pytest.raises(ValueError, match=expected):
        PoolConfig(**{"package_dir": "/p", field: value})


def test_several_package_dirs_are_kept_in_order() -> None:
    config = PoolConfig(package_dir=["/b", Path("/a")])
    assert config.package_dir == (Path("/b"), Path("/a"))
