"""A job storage has accepted, as this client remembers it."""

from __future__ import annotations

from typing import Any

import attrs

from spider.core.ids import JobId


@attrs.frozen
class SubmittedJob:
    """A registered job: its id, and what the client knows to decode its outputs.

    ``output_annotations`` is ``None`` for a job known only by id; its outputs then decode to
    plain msgpack values (lists, dicts, ints, floats, bytes).
    """

    id: JobId
    output_annotations: tuple[Any, ...] | None = None
    output_labels: tuple[str, ...] | None = None
    num_tasks: int | None = None


JobRef = SubmittedJob | int
"""Any method taking a job accepts a ``SubmittedJob`` or a bare job id."""


def as_submitted(job: JobRef) -> SubmittedJob:
    """``job`` as a ``SubmittedJob`` (a bare id knows nothing about its outputs)."""
    if isinstance(job, SubmittedJob):
        return job
    if isinstance(job, bool) or not isinstance(job, int) or not 0 <= job < 2**64:
        raise TypeError(f"a job is a SubmittedJob or a job id (u64), got {job!r}")
    return SubmittedJob(JobId(job))
