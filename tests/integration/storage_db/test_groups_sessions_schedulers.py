"""Resource groups, sessions and scheduler registration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spider.core.ids import ResourceGroupId
from spider.storage.db import DuplicateResourceGroup, StorageDatabase


def test_a_resource_group_keeps_its_password_hash_verbatim(
    storage_database: StorageDatabase,
) -> None:
    password_hash = bytes(range(256)) * 8  # 2048 bytes, every byte value
    group = storage_database.add_resource_group("analytics", password_hash)

    assert group > 0
    assert storage_database.get_resource_group_password_hash(group) == password_hash


def test_a_duplicate_resource_group_is_rejected(storage_database: StorageDatabase) -> None:
    first = storage_database.add_resource_group("analytics", b"one")

    with pytest.raises(DuplicateResourceGroup, match="'analytics' already exists"):
        storage_database.add_resource_group("analytics", b"two")
    assert storage_database.get_resource_group_password_hash(first) == b"one"


def test_external_ids_compare_exactly(storage_database: StorageDatabase) -> None:
    # Both backends compare bytes: no case folding or accent stripping (utf8mb4_bin).
    names = ["analytics", "Analytics", "anälytics", "analytics "]
    groups = [storage_database.add_resource_group(name, name.encode()) for name in names]

    assert len(set(groups)) == len(names)


def test_a_missing_resource_group_has_no_password_hash(
    storage_database: StorageDatabase,
) -> None:
    assert storage_database.get_resource_group_password_hash(ResourceGroupId(999)) is None


def test_session_ids_start_positive_and_increase(storage_database: StorageDatabase) -> None:
    first = storage_database.new_session()
    second = storage_database.new_session()

    assert 0 < first < second


def test_session_ids_increase_across_reconnects(
    storage_database: StorageDatabase,
    storage_database_factory: Callable[[], StorageDatabase],
) -> None:
    sessions = [storage_database.new_session()]
    storage_database.close()
    for _ in range(3):
        restarted = storage_database_factory()
        restarted.create_schema()
        sessions.append(restarted.new_session())
        restarted.close()

    assert sessions == sorted(set(sessions))
    assert len(sessions) == 4


def test_registering_a_scheduler_replaces_the_previous_one(
    storage_database: StorageDatabase,
) -> None:
    assert storage_database.list_schedulers() == []
    first = storage_database.register_scheduler("10.0.0.1", 50052)
    assert storage_database.list_schedulers() == [(first, "10.0.0.1", 50052)]

    second = storage_database.register_scheduler("scheduler.example", 65535)

    assert second > first
    assert storage_database.list_schedulers() == [(second, "scheduler.example", 65535)]
