"""Faults injected while jobs run: every job still Succeeds with the right outputs, and no task
of a job starts after the job was seen to end. On SQLite and on MariaDB.

Each test starts a word count, two ``nn`` jobs and a job whose tasks fail before they succeed
(with a commit task), waits until some of
their tasks have ended, injects the fault, and checks that tasks kept starting after it (so the
fault did land mid-job) and that the jobs end as if nothing had happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .cluster import Cluster
from .driver import (
    JOB_DEADLINE,
    POLL_INTERVAL,
    Ended,
    JobDriver,
    read_journal,
    runs_after_end,
)
from .examples import Job, flaky_job, nn_job, wordcount_job

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


def _run_through(cluster: Cluster, driver: JobDriver, fault: Callable[[], None]) -> None:
    jobs = _jobs()
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
