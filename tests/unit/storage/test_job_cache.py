"""``JobCache``: one block per job id, terminal jobs evicted in the order they ended."""

from __future__ import annotations

import pytest

from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.dataflow import JobInputs
from spider.storage.job_cache import JobCache
from spider.storage.job_control import JobControlBlock

from .jobs import diamond


def block(job_id: int) -> JobControlBlock:
    return JobControlBlock.build(
        JobId(job_id),
        ResourceGroupId(1),
        JobState.READY,
        diamond(),
        JobInputs.decoded([b"\x01", b"\x02"]),
    )


def test_insert_get_and_evict() -> None:
    cache = JobCache()
    first, second = block(1), block(2)
    cache.insert(first)
    cache.insert(second)
    assert cache.get(JobId(1)) is first
    assert cache.get(JobId(3)) is None
    assert len(cache) == 2
    first.state = JobState.CANCELLED
    cache.mark_terminated(JobId(1), now=5.0)
    assert cache.evict_expired(now=14.9, retention=10) == []
    assert cache.evict_expired(now=15.0, retention=10) == [JobId(1)]
    assert list(cache) == [second]


def test_a_job_id_is_cached_once() -> None:
    cache = JobCache()
    cache.insert(block(7))
    with pytest.raises(AssertionError, match="job 7 is already in the job cache"):
        cache.insert(block(7))
