"""The embedded cluster's metrics and health endpoints, scraped over HTTP while a job runs."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.embedded.cluster_process import embedded_cluster
from tests.e2e.embedded.test_embedded_cluster import add_chain, run_job
from tests.integration.storage_service.grpc_client import StorageClient, StubModules
from tests.metrics_scrape import get, sample, scrape, wait_ready

LINKS = 6


def test_the_task_counters_move_during_a_job(tmp_path: Path, stub_modules: StubModules) -> None:
    with embedded_cluster(tmp_path, extra_yaml="metrics: {port: 0}\n") as cluster:
        port = cluster.metrics_port
        assert port is not None, "the banner names no metrics endpoint"
        assert get(port, "/healthz") == (200, b"ok\n")
        report = wait_ready(port)
        assert set(report["conditions"]) == {"storage", "scheduler", "execution manager"}
        before = scrape(port)
        client = StorageClient.connect(stub_modules, cluster.storage_port)
        try:
            run_job(client, add_chain(LINKS), [1, 2])
        finally:
            client.close()
        after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("spider_storage_jobs_submitted_total") == 1
    assert moved("spider_storage_jobs_finished_total", state="Succeeded") == 1
    assert moved("spider_storage_task_instances_started_total") == LINKS
    assert moved("spider_storage_task_outcomes_total", outcome="succeeded") == LINKS
    assert moved("spider_scheduler_tasks_placed_total") == LINKS
    assert moved("spider_em_tasks_finished_total", outcome="succeeded") == LINKS
    assert moved("spider_em_task_seconds_count") == LINKS
    assert moved("spider_storage_db_commit_seconds_count") >= 1
    # The client's calls went over gRPC (the parts' calls to each other stay in process).
    start = "/storage.JobOrchestrationService/StartJob"
    assert moved("spider_rpc_server_handling_seconds_count", method=start, code="OK") == 1
    assert sample(after, "spider_storage_lane_depth", lane="task") == 0
    assert sample(after, "spider_em_executor_starts_total", reason="start") >= 1


def test_without_a_metrics_block_the_default_port_or_a_free_one_serves(tmp_path: Path) -> None:
    with embedded_cluster(tmp_path) as cluster:
        assert cluster.metrics_port is not None
        assert get(cluster.metrics_port, "/healthz")[0] == 200


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    with embedded_cluster(tmp_path, extra_yaml="metrics: {port: null}\n") as cluster:
        assert cluster.metrics_port is None
