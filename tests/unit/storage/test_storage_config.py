"""The storage configuration: Spider's keys and defaults, Spider-py's additions, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from spider.core.config import ConfigError, structure_config
from spider.storage import StorageConfig
from spider.storage.db.config import MariaDbConfig, SqliteConfig


def test_defaults_are_spiders() -> None:
    config = StorageConfig()
    assert (config.host, config.port) == ("0.0.0.0", 50051)
    queue = config.runtime.inbound_queue
    assert (queue.task_capacity, queue.commit_capacity, queue.cleanup_capacity) == (
        65_536,
        1_024,
        1_024,
    )
    pool = config.runtime.task_instance_pool
    assert (pool.gc_interval_sec, pool.execution_manager_stale_cutoff_sec) == (30, 60)
    assert pool.hard_timeout_grace_sec == 30
    gc = config.runtime.job_cache_gc
    assert (gc.gc_interval_sec, gc.terminated_job_retention_sec) == (30, 300)
    assert config.runtime.db_retention_sec == 7 * 24 * 3600
    assert config.runtime.db_threads >= 1
    assert config.runtime.max_job_wait_sec == 60
    limits = config.runtime.limits
    assert (limits.max_request_bytes, limits.max_task_graph_bytes) == (128 << 20, 256 << 20)
    assert (limits.max_job_inputs_bytes, limits.max_task_outputs_bytes) == (64 << 20, 64 << 20)
    assert limits.max_error_message_chars == 64 * 1024


def test_limits_load_from_yaml() -> None:
    data = {"runtime": {"limits": {"max_job_inputs_bytes": 1024, "max_error_message_chars": 80}}}
    limits = structure_config(data, StorageConfig).runtime.limits
    assert (limits.max_job_inputs_bytes, limits.max_error_message_chars) == (1024, 80)
    assert limits.max_task_outputs_bytes == 64 << 20


def test_a_spider_config_file_loads() -> None:
    data = {
        "host": "127.0.0.1",
        "port": 6000,
        "runtime": {
            "inbound_queue": {"task_capacity": 1_048_576, "commit_capacity": 256},
            "task_instance_pool": {
                "execution_manager_stale_cutoff_sec": 10,
                "gc_interval_sec": 5,
                "message_channel_capacity": 128,
            },
            "job_cache_gc": {"terminated_job_retention_sec": 60},
            "db_retention_sec": 3600,
            "max_job_wait_sec": 5,
        },
    }
    config = structure_config(data, StorageConfig)
    assert config.runtime.max_job_wait_sec == 5
    assert config.port == 6000
    assert config.runtime.inbound_queue.task_capacity == 1_048_576
    assert config.runtime.inbound_queue.cleanup_capacity == 1_024
    assert config.runtime.task_instance_pool.gc_interval_sec == 5
    assert config.runtime.job_cache_gc.gc_interval_sec == 30
    assert config.runtime.db_retention_sec == 3600


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"runtime": {"inbound_queue": {"task_capacity": 0}}}, "task_capacity must be"),
        ({"runtime": {"task_instance_pool": {"gc_interval_sec": 0}}}, "gc_interval_sec must"),
        (
            {"runtime": {"task_instance_pool": {"hard_timeout_grace_sec": -1}}},
            "hard_timeout_grace_sec must be >= 0",
        ),
        ({"runtime": {"db_threads": 0}}, "db_threads must be"),
        ({"runtime": {"max_job_wait_sec": -1}}, "max_job_wait_sec must be >= 0"),
        ({"port": 70000}, "port must be an integer from 0 to 65535"),
        ({"runtime": {"limits": {"max_task_outputs_bytes": 0}}}, "max_task_outputs_bytes must"),
        ({"runtime": {"bogus": 1}}, "unknown key(s) 'bogus'"),
    ],
)
def test_bad_values_are_rejected_by_name(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        structure_config(data, StorageConfig)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ({"sqlite": "/tmp/spider.db"}, SqliteConfig(Path("/tmp/spider.db"))),
        (
            {"host": "db", "name": "spider-db", "max_connections": 64},
            MariaDbConfig("db", "spider-db", max_connections=64),
        ),
        (None, None),
    ],
    ids=["sqlite", "mariadb", "default"],
)
def test_runtime_db_takes_either_form(db: object, expected: object) -> None:
    data = {"runtime": {"db": db}} if db is not None else {}
    assert structure_config(data, StorageConfig).runtime.db == expected
