"""Tasks for the executor and EM tests, after upstream's ``integration_test_tasks`` package.

Set ``SPIDER_TEST_TDL_INIT_SHOULD_FAIL`` to make the load hook fail.
"""

from __future__ import annotations

import os

from spider.tdl import on_load, task

from . import _state
from .commit import assert_outputs_sum_zero, cleanup_marker
from .process import always_abort, spawn_grandchild_and_hang, spawn_process_tree, write_stderr

__all__ = [
    "add",
    "always_abort",
    "always_fail",
    "assert_initialized",
    "assert_outputs_sum_zero",
    "cleanup_marker",
    "echo_bytes",
    "fibonacci",
    "produce_bytes",
    "sleep_and_echo",
    "spawn_grandchild_and_hang",
    "spawn_process_tree",
    "write_stderr",
]


@on_load
def initialize() -> None:
    """Fail on request, otherwise mark the package initialized."""
    if os.environ.get("SPIDER_TEST_TDL_INIT_SHOULD_FAIL"):
        raise RuntimeError("integration_test_tasks: init failure requested")
    _state.INITIALIZED = True


@task
def fibonacci(index: int) -> int:
    """Naive recursion on purpose: a CPU-bound task whose run time grows with ``index``."""
    if index < 2:
        return index
    return fibonacci(index - 1) + fibonacci(index - 2)


@task
def add(a: int, b: int) -> int:
    """The sum of two ints."""
    return a + b


@task
def always_fail() -> None:
    """Raise, always."""
    raise ValueError("always_fail: intentional failure")


@task
def sleep_and_echo(items: list[str]) -> list[str]:
    """Sleep 50 µs, then return the input."""
    _state.pause(50e-6)
    return items


@task
def assert_initialized() -> None:
    """Fail unless the load hook ran."""
    if not _state.INITIALIZED:
        raise RuntimeError("assert_initialized: the on_load hook did not run")


@task
def echo_bytes(data: bytes) -> bytes:
    """Return the input (for oversized frames)."""
    return data


@task
def produce_bytes(n: int) -> bytes:
    """``n`` bytes of a repeating pattern."""
    return bytes(index % 251 for index in range(n))
