"""Faults injected while jobs run: every job still Succeeds with the right outputs, and no task
of a job starts after the job was seen to end. On SQLite and on MariaDB.

Each test starts a word count, two ``nn`` jobs and a job whose tasks fail before they succeed
(with a commit task), waits until some of
their tasks have ended, injects the fault, and checks that tasks kept starting after it (so the
fault did land mid-job) and that the jobs end as if nothing had happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spider.core.task_graph import TimeoutPolicy
from tests.mariadb_server import MariaDbServer
from tests.small_disk import fill

from .cluster import EM_READY, STORAGE_EM_CUTOFF_SEC, Cluster
from .driver import (
    JOB_DEADLINE,
    POLL_INTERVAL,
    Ended,
    JobDriver,
    read_journal,
    runs_after_end,
)
from .examples import Job, flaky_job, nn_job, wordcount_job
from .service_process import ServiceProcess

# How long a paused EM may take to be declared dead, and a resumed one to register again.
DECLARED_DEAD_DEADLINE = STORAGE_EM_CUTOFF_SEC + 30.0
TEXT = b"a rose is a rose is a rose " * 5 + b"and so on"
ENDED_BEFORE_FAULT = 6


def _jobs() -> list[Job]:
    return [
        wordcount_job(TEXT),
        nn_job(layers=5, width=6, seed=1),
        nn_job(layers=5, width=6, seed=2),
        flaky_job([1, 0, 2]),
    ]


def _wait_for_progress(cluster: Cluster, job_ids: list[int], ended_tasks: int) -> None:
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        journal = read_journal(cluster.state_dir)
        done = [line for line in journal if line.job_id in job_ids and line.phase == "end"]
        if len(done) >= ended_tasks:
            return
        cluster.check_alive()
        assert time.monotonic() < deadline, f"only {len(done)} tasks ended"
        time.sleep(POLL_INTERVAL)  # polling the journal until the jobs are under way


def _run_through(
    cluster: Cluster,
    driver: JobDriver,
    fault: Callable[[], None],
    jobs: list[Job] | None = None,
) -> None:
    jobs = jobs or _jobs()
    job_ids = [driver.submit(job) for job in jobs]
    _wait_for_progress(cluster, job_ids, ENDED_BEFORE_FAULT)
    fault_at = time.time()
    fault()
    ended: dict[int, Ended] = {}
    for job_id, job in zip(job_ids, jobs, strict=True):
        ended[job_id] = driver.wait(job_id, cluster.check_alive)
        assert ended[job_id].state == "SUCCEEDED", driver.error(job_id)
        assert driver.outputs(job_id, job) == job.expected
    # A last job after the others: work of theirs still queued somewhere would run by its end.
    sentinel, sentinel_ended = driver.run(nn_job(layers=2, width=5, seed=3), cluster.check_alive)
    ended[sentinel] = sentinel_ended
    journal = read_journal(cluster.state_dir)
    assert any(line.job_id in job_ids and line.at > fault_at for line in journal), (
        "the jobs had ended before the fault"
    )
    assert runs_after_end(journal, ended) == []
    commit = cluster.state_dir / f"commit-{job_ids[-1]}"
    assert commit.read_text().split() == [str(value) for value in jobs[-1].expected]


def test_jobs_survive_an_em_killed_mid_job(fault_cluster: Cluster, fault_driver: JobDriver) -> None:
    _run_through(fault_cluster, fault_driver, lambda: fault_cluster.kill_em(0))


def test_jobs_survive_a_storage_crash_and_restart(
    fault_cluster: Cluster, fault_driver: JobDriver
) -> None:
    def crash_and_restart() -> None:
        fault_cluster.kill_storage()
        fault_cluster.start_storage()

    _run_through(fault_cluster, fault_driver, crash_and_restart)


def test_jobs_survive_a_scheduler_restart(fault_cluster: Cluster, fault_driver: JobDriver) -> None:
    _run_through(fault_cluster, fault_driver, fault_cluster.restart_scheduler)


# --- storage's database refusing writes ------------------------------------------------------

OUTAGE_SEC = 20.0
SHORT_TIMEOUTS = TimeoutPolicy(soft_timeout_ms=2_000, hard_timeout_ms=3_000)
"""Storage gives up on these instances 3 s plus a 2 s grace after registration unless the
outage is left out of the count: an outage of 20 s would fail the job (it has no retries)."""


def _outage_jobs() -> list[Job]:
    # The flaky job, whose commit task the check reads, stays last.
    return [nn_job(layers=4, width=6, seed=4, timeouts=SHORT_TIMEOUTS), *_jobs()]


def _database_status(cluster: Cluster) -> dict[str, Any]:
    """What ``spider status --json`` says about storage's database."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spider.cli",
            "--storage",
            f"127.0.0.1:{cluster.storage_port}",
            "--json",
            "status",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    database: dict[str, Any] = json.loads(result.stdout)["database"]
    return database


def _outage(
    cluster: Cluster, refuse_writes: Callable[[], None], allow_writes: Callable[[], None]
) -> Callable[[], None]:
    """A fault: the database refuses writes for ``OUTAGE_SEC``, while the cluster must stay up
    and ``spider status`` must say why."""

    def fault() -> None:
        refuse_writes()
        seen: dict[str, Any] = {}
        try:
            ends = time.monotonic() + OUTAGE_SEC
            while time.monotonic() < ends:
                cluster.check_alive()
                if not seen:
                    status = _database_status(cluster)
                    seen = {} if status["writable"] else status
                time.sleep(0.5)  # the outage lasts its set time; the loop only watches it
        finally:
            allow_writes()
        assert seen, "spider status never said that the database refused writes"
        assert "cannot take writes" in seen["problem"], seen
        status = _database_status(cluster)
        while not status["writable"]:  # the next heartbeat's commit ends the outage
            cluster.check_alive()
            time.sleep(POLL_INTERVAL)
            status = _database_status(cluster)
        assert status["last_outage_sec"] >= OUTAGE_SEC - 1, status

    return fault


def test_jobs_survive_a_full_disk(
    small_disk_cluster: Cluster, small_disk_driver: JobDriver
) -> None:
    disk = small_disk_cluster.directory / "disk"
    filler: list[Path] = []
    _run_through(
        small_disk_cluster,
        small_disk_driver,
        _outage(
            small_disk_cluster,
            lambda: filler.append(fill(disk)),
            lambda: filler.pop().unlink(),
        ),
        _outage_jobs(),
    )


@pytest.mark.mariadb
def test_jobs_survive_a_mariadb_server_refusing_writes(
    mariadb_cluster: Cluster, mariadb_driver: JobDriver, mariadb_server: MariaDbServer
) -> None:
    def read_only(on: bool) -> Callable[[], None]:
        def switch() -> None:
            with mariadb_server.admin() as admin:
                admin.exec_driver_sql(f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")

        return switch

    _run_through(
        mariadb_cluster,
        mariadb_driver,
        _outage(mariadb_cluster, read_only(True), read_only(False)),
        _outage_jobs(),
    )


def _declared_dead(message: str) -> set[int]:
    """The ids in storage's ``declared N execution manager(s) dead: 3, 4; ...`` line."""
    if not message.startswith("declared ") or " dead: " not in message:
        return set()
    ids = message.split(" dead: ", 1)[1].split(";", 1)[0]
    return {int(em_id) for em_id in ids.split(", ")}


def _pause_past_the_cutoff(cluster: Cluster, em: ServiceProcess) -> tuple[int, int]:
    """SIGSTOP ``em`` until storage declares it dead, SIGCONT it, and wait until it registered
    again; its old id and its new one."""
    assert cluster.storage is not None
    storage = cluster.storage
    old = int(em.wait_for_entry(lambda entry: entry.get("message") == EM_READY)["em_id"])
    em.pause()
    try:
        storage.wait_for_entry(
            lambda entry: old in _declared_dead(str(entry.get("message"))),
            deadline=DECLARED_DEAD_DEADLINE,
        )
    finally:
        em.resume()
    rejoined = em.wait_for_entry(
        lambda entry: entry.get("old_em_id") == old, deadline=DECLARED_DEAD_DEADLINE
    )
    assert rejoined["level"] == "WARNING"
    assert rejoined["gone_s"] >= STORAGE_EM_CUTOFF_SEC
    new = int(rejoined["em_id"])
    assert new != old
    return old, new


def test_jobs_survive_an_em_paused_past_its_cutoff_that_registers_again(
    fault_cluster: Cluster, fault_driver: JobDriver
) -> None:
    em = fault_cluster.ems[0]
    assert em is not None
    rejoined: list[tuple[int, int]] = []
    _run_through(
        fault_cluster,
        fault_driver,
        lambda: rejoined.append(_pause_past_the_cutoff(fault_cluster, em)),
    )
    # It lived on (check_alive ran throughout) and stops with status 0 (the fixture checks).
    assert fault_cluster.ems[0] is em
    assert len(rejoined) == 1


def test_an_em_back_from_the_dead_keeps_its_executors_and_runs_new_tasks(
    fault_cluster: Cluster, fault_driver: JobDriver
) -> None:
    em = fault_cluster.ems[0]
    assert em is not None
    # The executor and its warm spare start after the registration: wait for both.
    deadline = time.monotonic() + JOB_DEADLINE
    while len(executors := em.child_pids()) < 2:
        assert time.monotonic() < deadline, f"executors: {executors}"
        time.sleep(POLL_INTERVAL)  # polling the process table until the pool has opened
    _, new = _pause_past_the_cutoff(fault_cluster, em)
    assert em.child_pids() == executors
    # The other EM leaves, so every task from now on runs on the one that came back.
    assert fault_cluster.stop_em(1) == 0
    for job in _jobs():
        fault_driver.run(job, fault_cluster.check_alive)
    assert em.child_pids() == executors
    entries = em.entries()
    back = next(i for i, entry in enumerate(entries) if entry.get("em_id") == new)
    assert any(entry["message"] == "Task completed successfully." for entry in entries[back:])
