"""Execution-manager liveness: registration, heartbeats, the dead-EM sweep and its #371 race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from spider.core.ids import ExecutionManagerId
from spider.storage.db import (
    ExecutionManagerDead,
    StorageDatabase,
    UnknownExecutionManager,
)

from .storage_helpers import NOW

MISSING_EM = ExecutionManagerId(31_337)
# Bounds the concurrency test on a busy 2-core machine; a healthy run takes well under a second.
RACE_DEADLINE = 60.0
RACING_MANAGERS = 16
HEARTBEATS_EACH = 10


def test_a_registered_execution_manager_is_alive(storage_database: StorageDatabase) -> None:
    first = storage_database.register_execution_manager("10.0.0.1", NOW)
    second = storage_database.register_execution_manager("fe80::1:2:3:4:5:6", NOW)

    assert second > first > 0
    assert storage_database.is_execution_manager_alive(first)
    assert storage_database.is_execution_manager_alive(second)


def test_a_heartbeat_keeps_an_execution_manager_alive(storage_database: StorageDatabase) -> None:
    em_id = storage_database.register_execution_manager("10.0.0.1", NOW)

    storage_database.heartbeat_execution_manager(em_id, NOW + 60)

    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 60) == []
    assert storage_database.is_execution_manager_alive(em_id)
    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 61) == [em_id]


def test_heartbeat_of_an_unknown_execution_manager_fails(
    storage_database: StorageDatabase,
) -> None:
    with pytest.raises(UnknownExecutionManager, match=f"{MISSING_EM} is not registered"):
        storage_database.heartbeat_execution_manager(MISSING_EM, NOW)


def test_heartbeat_of_a_dead_execution_manager_fails_and_does_not_revive_it(
    storage_database: StorageDatabase,
) -> None:
    em_id = storage_database.register_execution_manager("10.0.0.1", NOW)
    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 1) == [em_id]

    with pytest.raises(ExecutionManagerDead, match="must register again"):
        storage_database.heartbeat_execution_manager(em_id, NOW + 2)
    assert not storage_database.is_execution_manager_alive(em_id)


def test_is_alive_of_an_unknown_execution_manager_fails(storage_database: StorageDatabase) -> None:
    with pytest.raises(UnknownExecutionManager):
        storage_database.is_execution_manager_alive(MISSING_EM)


def test_mark_dead_with_no_stale_execution_manager_marks_nothing(
    storage_database: StorageDatabase,
) -> None:
    em_id = storage_database.register_execution_manager("10.0.0.1", NOW)

    # Stale means strictly older than the cutoff.
    assert storage_database.mark_dead_execution_managers(stale_before=NOW) == []
    assert storage_database.is_execution_manager_alive(em_id)


def test_mark_dead_marks_only_the_stale_ones_and_each_only_once(
    storage_database: StorageDatabase,
) -> None:
    stale = [storage_database.register_execution_manager(f"10.0.0.{i}", NOW) for i in range(3)]
    fresh = storage_database.register_execution_manager("10.0.1.1", NOW)
    storage_database.heartbeat_execution_manager(fresh, NOW + 30)

    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 10) == stale
    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 10) == []
    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 1000) == [fresh]
    assert storage_database.mark_dead_execution_managers(stale_before=NOW + 1000) == []
    assert not any(storage_database.is_execution_manager_alive(em_id) for em_id in [*stale, fresh])


def test_heartbeats_racing_the_dead_sweep_neither_deadlock_nor_disagree(
    storage_database: StorageDatabase,
) -> None:
    """Upstream #371: 16 EMs heartbeat from threads while another thread sweeps repeatedly.

    Every EM starts fresh; odd EMs keep heartbeating fresh times, even ones heartbeat stale
    times, so the sweep kills them while their later heartbeats are in flight. Each heartbeat
    must succeed or see the EM dead; the sweeps must kill exactly the even EMs, each once, and
    agree with what the heartbeats saw; everything must finish (a deadlock would hang).
    """
    cutoff = NOW + 5
    managers = [
        storage_database.register_execution_manager(f"10.0.0.{i}", cutoff)
        for i in range(RACING_MANAGERS)
    ]
    heartbeats_done = threading.Event()

    def heartbeat(index: int) -> bool:
        """Heartbeat until done or dead; whether the EM was found dead."""
        em_id = managers[index]
        for beat in range(HEARTBEATS_EACH):
            now = cutoff + beat if index % 2 else NOW + beat * 0.1
            try:
                storage_database.heartbeat_execution_manager(em_id, now)
            except ExecutionManagerDead:
                return True
        return False

    def sweep() -> list[list[ExecutionManagerId]]:
        sweeps = []
        while not heartbeats_done.is_set():
            sweeps.append(storage_database.mark_dead_execution_managers(cutoff))
        sweeps.append(storage_database.mark_dead_execution_managers(cutoff))
        return sweeps

    with ThreadPoolExecutor(max_workers=RACING_MANAGERS + 1) as pool:
        sweeper = pool.submit(sweep)
        beaters = [pool.submit(heartbeat, index) for index in range(RACING_MANAGERS)]
        try:
            found_dead = {
                managers[index]
                for index, beater in enumerate(beaters)
                if beater.result(timeout=RACE_DEADLINE)
            }
        finally:
            heartbeats_done.set()
        sweeps = sweeper.result(timeout=RACE_DEADLINE)

    marked = [em_id for swept in sweeps for em_id in swept]
    assert len(marked) == len(set(marked)), "an EM was reported dead twice"
    assert sorted(marked) == managers[0::2]
    assert found_dead <= set(marked)
    for em_id in managers:
        assert storage_database.is_execution_manager_alive(em_id) == (em_id not in marked)
