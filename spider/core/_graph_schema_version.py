"""The task-graph schema version, and the semver check Spider applies to it.

Spider parses the version with Rust's ``semver`` crate and requires ``>=0.1.0,<0.2.0``. Under
that crate's rules a pre-release version matches a requirement only if a comparator names the
same ``major.minor.patch`` with a pre-release, which these comparators do not; so exactly the
``0.1.x`` versions without a pre-release tag are compatible (build metadata is ignored).
"""

from __future__ import annotations

import re
from typing import Any

from spider.core.errors import TaskGraphError
from spider.core.ids import U64_MAX

TASK_GRAPH_SCHEMA_VERSION = "0.1.0"
COMPATIBLE_SCHEMA_VERSIONS = ">=0.1.0,<0.2.0"

_NUMBER = r"(0|[1-9][0-9]*)"
_PRE_IDENTIFIER = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-({_PRE_IDENTIFIER}(?:\.{_PRE_IDENTIFIER})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def check_schema_version(raw: Any) -> None:
    """Raise ``TaskGraphError`` unless ``raw`` is a version string this reader understands."""
    if not isinstance(raw, str):
        kind = "null" if raw is None else type(raw).__name__
        raise TaskGraphError(
            f"invalid task graph: schema_version must be a semver string such as "
            f'"{TASK_GRAPH_SCHEMA_VERSION}", got {kind}'
        )
    shown = raw if len(raw) <= 64 else raw[:64] + "..."
    match = _SEMVER.fullmatch(raw)
    if match is None:
        raise TaskGraphError(
            f"invalid task graph: schema_version {shown!r} is not a semver version "
            f'(MAJOR.MINOR.PATCH, such as "{TASK_GRAPH_SCHEMA_VERSION}")'
        )
    parts = match.group(1, 2, 3)
    # The length test first: int() refuses strings of thousands of digits.
    if any(len(part) > 20 or int(part) > U64_MAX for part in parts):
        raise TaskGraphError(
            f"invalid task graph: schema_version {shown!r} has a number above 2**64-1"
        )
    if parts[:2] != ("0", "1") or match.group(4) is not None:
        raise TaskGraphError(
            f"incompatible task graph schema version: found {shown!r}, this reader accepts "
            f"{COMPATIBLE_SCHEMA_VERSIONS}; re-encode the graph with a matching client"
        )
