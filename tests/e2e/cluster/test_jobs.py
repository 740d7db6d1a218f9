"""Jobs of the examples package on a cluster of separate processes, checked against direct
calls of the same task functions."""

from __future__ import annotations

import time

from .cluster import Cluster
from .driver import JOB_DEADLINE, POLL_INTERVAL, JobDriver, read_journal, runs_after_end
from .examples import flaky_job, nn_job, waiting_job, wordcount_job

TEXT = b"the quick brown fox jumps over the lazy dog and the dog sleeps " * 7 + b"fox"


def test_wordcount_fans_out_and_in(quick_driver: JobDriver, quick_cluster: Cluster) -> None:
    job = wordcount_job(TEXT)
    job_id, ended = quick_driver.run(job, quick_cluster.check_alive)
    assert job.expected[0][b"the"] == 21  # the reference itself is right
    journal = [line for line in read_journal(quick_cluster.state_dir) if line.job_id == job_id]
    # split, 4 counts, 3 merges: each ran (and ended) exactly once.
    ends = sorted(line.task for line in journal if line.phase == "end")
    assert ends == sorted(f"index:{k}" for k in range(8))
    assert runs_after_end(journal, {job_id: ended}) == []


def test_nn_layers_match_an_in_process_computation(
    quick_driver: JobDriver, quick_cluster: Cluster
) -> None:
    job = nn_job(layers=6, width=8, seed=385)
    assert len(job.graph) == 48
    assert len(job.expected) == 8
    quick_driver.run(job, quick_cluster.check_alive)


def test_the_commit_task_sees_the_outputs(quick_driver: JobDriver, quick_cluster: Cluster) -> None:
    job = flaky_job([0, 0])
    job_id, _ = quick_driver.run(job, quick_cluster.check_alive)
    commit = quick_cluster.state_dir / f"commit-{job_id}"
    assert commit.read_text().split() == ["1", "11"]


def test_failed_attempts_are_retried_until_the_job_succeeds(
    quick_driver: JobDriver, quick_cluster: Cluster
) -> None:
    failures = [2, 0, 1]
    job_id, _ = quick_driver.run(flaky_job(failures), quick_cluster.check_alive)
    for index, count in enumerate(failures):
        attempts = quick_cluster.state_dir / f"attempts-{job_id}-index:{index}"
        assert attempts.read_text().split() == [str(n) for n in range(1, count + 2)]
    assert (quick_cluster.state_dir / f"commit-{job_id}").read_text().split() == [
        "1",
        "11",
        "21",
    ]


def test_a_task_out_of_retries_fails_the_job(
    quick_driver: JobDriver, quick_cluster: Cluster
) -> None:
    job_id = quick_driver.submit(flaky_job([1], retries=0))
    ended = quick_driver.wait(job_id, quick_cluster.check_alive)
    assert ended.state == "FAILED"
    assert "fails on purpose" in quick_driver.error(job_id)
    assert not (quick_cluster.state_dir / f"commit-{job_id}").exists()


def test_cancel_runs_the_cleanup_task(quick_driver: JobDriver, quick_cluster: Cluster) -> None:
    job_id = quick_driver.submit(waiting_job(2_000))
    deadline = time.monotonic() + JOB_DEADLINE
    while not any(line.job_id == job_id for line in read_journal(quick_cluster.state_dir)):
        quick_cluster.check_alive()
        assert time.monotonic() < deadline, "the wait task never started"
        time.sleep(POLL_INTERVAL)  # polling the journal until the task runs
    cancelled = quick_driver.call("CancelJob", job_id=job_id)
    assert quick_driver.client.pb.storage.JobState.Name(cancelled.state) == "CLEANUP_READY"
    ended = quick_driver.wait(job_id, quick_cluster.check_alive)
    assert ended.state == "CANCELLED"
    assert (quick_cluster.state_dir / f"cleanup-{job_id}").read_text() == "cleaned up\n"
    journal = [line for line in read_journal(quick_cluster.state_dir) if line.job_id == job_id]
    assert [line.task for line in journal if line.phase == "start"] == ["index:0", "cleanup"]
    assert runs_after_end(journal, {job_id: ended}) == []
