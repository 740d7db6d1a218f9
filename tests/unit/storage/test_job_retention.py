"""Retention of terminated jobs: evicted from the cache after minutes, deleted from the DB later.

Mirrors upstream's ``job_cache_gc.rs`` (kept before the retention, removed exactly at it: ``>=``;
every expired job removed; zero values rejected) and adds the database retention upstream
never ran. The test config keeps terminated jobs 10 s in memory.
"""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from spider.core.config import ConfigError, structure_config
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.storage import JobNotFound, StorageConfig, StorageState, open_storage_state
from spider.storage.config import JobCacheGcConfig

from .fake_database import FakeDatabase
from .jobs import create_state, diamond, new_group, storage_config, submission


async def cancelled_jobs(state: StorageState, database: FakeDatabase, count: int) -> list[JobId]:
    group = new_group(database, f"group-{len(database.groups)}")
    jobs = []
    for _ in range(count):
        job_id = await state.lifecycle.register_job(group, *submission(diamond(), [1, 2]))
        await state.lifecycle.cancel_job(job_id)
        jobs.append(job_id)
    return jobs


async def test_gc_keeps_jobs_until_their_retention_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    (job_id,) = await cancelled_jobs(state, database, 1)
    await trio.sleep(9)
    assert await state.collector.collect() == ([], 0)
    assert state.lifecycle.cache.get(job_id) is not None


async def test_gc_removes_jobs_exactly_when_their_retention_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    (job_id,) = await cancelled_jobs(state, database, 1)
    await trio.sleep(10)
    assert await state.collector.collect() == ([job_id], 0)
    assert state.lifecycle.cache.get(job_id) is None
    assert await state.lifecycle.get_job_state(job_id) is JobState.CANCELLED


async def test_gc_removes_all_expired_jobs_and_only_those(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    early = await cancelled_jobs(state, database, 3)
    await trio.sleep(5)
    late = await cancelled_jobs(state, database, 2)
    running = await state.lifecycle.register_job(
        new_group(database, "r"), *submission(diamond(), [1, 2])
    )
    await trio.sleep(5)
    evicted, _ = await state.collector.collect()
    assert evicted == early
    await trio.sleep(5)
    evicted, _ = await state.collector.collect()
    assert evicted == late
    assert state.lifecycle.cache.get(running) is not None


async def test_terminated_jobs_are_deleted_from_the_db_after_the_db_retention(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    config = storage_config()
    config = attrs.evolve(config, runtime=attrs.evolve(config.runtime, db_retention_sec=100.0))
    state = await create_state(database, config)
    (job_id,) = await cancelled_jobs(state, database, 1)
    await trio.sleep(100)
    assert await state.collector.collect() == ([job_id], 0)
    await trio.sleep(0.5)
    assert await state.collector.collect() == ([], 1)
    with pytest.raises(JobNotFound):
        await state.lifecycle.get_job_state(job_id)


async def test_the_gc_loop_evicts_on_its_own(autojump_clock: trio.testing.MockClock) -> None:
    database = FakeDatabase()
    async with open_storage_state(
        storage_config(), database, clock=trio.current_time, threaded=False
    ) as state:
        (job_id,) = await cancelled_jobs(state, database, 1)  # at t = 0; passes run at 1, 2...
        await trio.sleep(9.99)
        assert state.lifecycle.cache.get(job_id) is not None
        await trio.sleep(0.02)
        assert state.lifecycle.cache.get(job_id) is None


def test_config_rejects_zero_values() -> None:
    with pytest.raises(ValueError, match="gc_interval_sec must be a positive number"):
        JobCacheGcConfig(gc_interval_sec=0)
    with pytest.raises(ValueError, match="terminated_job_retention_sec must be a positive"):
        JobCacheGcConfig(terminated_job_retention_sec=0)
    with pytest.raises(ConfigError, match=r"runtime\.job_cache_gc: gc_interval_sec must be"):
        structure_config({"runtime": {"job_cache_gc": {"gc_interval_sec": 0}}}, StorageConfig)
