"""A package whose load hook always fails."""

from __future__ import annotations

from spider.tdl import on_load, task


@on_load
def initialize() -> None:
    """Fail, always."""
    raise RuntimeError("bad_init: initialization always fails")


@task
def never_runs() -> int:
    """Unreachable: the package never loads."""
    return 0
