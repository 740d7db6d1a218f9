"""A package whose import fails."""

from __future__ import annotations

from spider.tdl import task


@task
def registered_before_failure() -> int:
    """Registered, then discarded when the import fails."""
    return 0


raise ImportError("broken_import: this package cannot be imported")
