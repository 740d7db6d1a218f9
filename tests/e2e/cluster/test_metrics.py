"""A multi-process cluster's metrics and health endpoints: storage, the scheduler and each EM
serve their own, and a scrape of each shows its share of a job's work."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spider.storage.db import SqliteConfig
from tests.integration.storage_service.grpc_client import StorageClient, StubModules
from tests.mariadb_server import free_tcp_port
from tests.metrics_scrape import get, sample, scrape, wait_ready

from .cluster import Cluster
from .conftest import running_cluster
from .driver import JobDriver
from .examples import nn_job

SERVICES = ("storage", "scheduler", "em-0", "em-1")


@pytest.fixture(scope="module")
def metered_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("metered")
    ports = {name: free_tcp_port() for name in SERVICES}
    cluster = Cluster(directory, SqliteConfig(directory / "storage.db"), 0, metrics_ports=ports)
    yield from running_cluster(cluster)


def test_each_service_reports_its_share_of_a_job(
    metered_cluster: Cluster, stub_modules: StubModules
) -> None:
    ports = metered_cluster.metrics_ports
    assert ports is not None
    expected = {
        "storage": {"storage"},
        "scheduler": {"scheduler"},
        "em-0": {"execution manager"},
        "em-1": {"execution manager"},
    }
    for name, port in ports.items():
        assert get(port, "/healthz")[0] == 200
        assert set(wait_ready(port)["conditions"]) == expected[name]
    before = {name: scrape(port) for name, port in ports.items()}
    client = StorageClient.connect(stub_modules, metered_cluster.storage_port)
    try:
        job = nn_job(layers=3, width=8, seed=5)
        JobDriver(client).run(job, metered_cluster.check_alive)
    finally:
        client.close()
    after = {name: scrape(port) for name, port in ports.items()}

    def moved(service: str, metric: str, **labels: str) -> float:
        return sample(after[service], metric, **labels) - sample(before[service], metric, **labels)

    tasks = len(job.graph)
    succeeded = moved("storage", "spider_storage_task_outcomes_total", outcome="succeeded")
    assert succeeded == tasks
    ran = [moved(em, "spider_em_tasks_finished_total", outcome="succeeded") for em in SERVICES[2:]]
    assert sum(ran) == tasks
    assert moved("scheduler", "spider_scheduler_tasks_placed_total") == tasks
    assert moved("storage", "spider_storage_jobs_finished_total", state="Succeeded") == 1
    # The EMs' calls are real gRPC here: storage and the scheduler time them per method.
    latency = "spider_rpc_server_handling_seconds_count"
    registered = "/spider_py.execution.TaskInstanceBatchService/RegisterTaskInstances"
    assert moved("storage", latency, method=registered, code="OK") >= 1
    next_tasks = "/spider_py.execution.TaskDispatchService/NextTasks"
    assert moved("scheduler", latency, method=next_tasks, code="OK") >= 1
    assert sample(after["scheduler"], "spider_scheduler_execution_managers") == 2
    # The command line finds the job and its tasks in the catalog, across processes too.
    listed = _spider_json(metered_cluster, "jobs", "--state", "Succeeded", "--limit", "1")
    (newest,) = listed["jobs"]
    assert newest["state"] == "Succeeded"
    listing = _spider_json(metered_cluster, "tasks", str(newest["job_id"]), "--limit", "1")
    assert (listing["task_count"], listing["counts"]) == (tasks, {"Succeeded": tasks})
    assert listing["tasks"][0]["instances"] >= 1
    assert sample(after["storage"], "spider_storage_db_available") == 1


def _spider_json(cluster: Cluster, *args: str, check: bool = True) -> Any:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spider.cli",
            "--storage",
            f"127.0.0.1:{cluster.storage_port}",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
    return json.loads(result.stdout)


def test_each_em_registers_the_address_storage_sees_it_from(
    metered_cluster: Cluster, stub_modules: StubModules
) -> None:
    client = StorageClient.connect(stub_modules, metered_cluster.storage_port)
    try:
        status = client.sync("ClusterStatusService", "GetClusterStatus")
    finally:
        client.close()
    alive = [em for em in status.execution_managers if em.alive]
    assert len(alive) == 2
    # Storage is on loopback here, so loopback is the EMs' route to it (not 0.0.0.0).
    assert {em.ip_address for em in alive} == {"127.0.0.1"}


def _increment_job(failures: int) -> dict[str, Any]:
    integer = {"Value": {"Primitive": {"Int": "Int64"}}}
    return {
        "graph": {
            "schema_version": "0.1.0",
            "tasks": [
                {
                    "tdl_context": {"package": "spider_examples", "task_func": "flaky::increment"},
                    "inputs": [integer, integer],
                    "outputs": [integer],
                    "input_sources": None,
                }
            ],
            "commit_task": None,
            "cleanup_task": None,
        },
        "inputs": [41, failures],
    }


def test_the_command_line_starts_watches_lists_and_explains_jobs_across_processes(
    metered_cluster: Cluster, tmp_path: Path
) -> None:
    succeeding = tmp_path / "succeeding.json"
    succeeding.write_text(json.dumps(_increment_job(failures=0)))
    failing = tmp_path / "failing.json"
    failing.write_text(json.dumps(_increment_job(failures=1)))

    held = _spider_json(metered_cluster, "submit", "--no-start", str(succeeding))
    job = str(held["job_id"])
    assert held["state"] == "Ready"
    assert _spider_json(metered_cluster, "start", job)["state"] == "Running"
    watched = _spider_json(metered_cluster, "watch", job)
    assert (watched["state"], watched["outputs"]) == ("Succeeded", [42])
    listing = _spider_json(metered_cluster, "tasks", job)
    assert listing["counts"] == {"Succeeded": 1}
    assert listing["tasks"][0]["function"] == "spider_examples::flaky::increment"

    failed = _spider_json(metered_cluster, "submit", "--wait", str(failing), check=False)
    assert failed["state"] == "Failed"
    error = _spider_json(metered_cluster, "error", str(failed["job_id"]))["error"]
    assert error.splitlines()[0] == (
        "in-task failure: RuntimeError: attempt 1 fails on purpose (1 must fail)"
    )
    assert f"of job {failed['job_id']}" in error.splitlines()[1]
    failed_tasks = _spider_json(metered_cluster, "tasks", str(failed["job_id"]))
    assert failed_tasks["tasks"][0]["error"] == error.splitlines()[0]
    newest = _spider_json(metered_cluster, "jobs", "--limit", "2")["jobs"]
    assert [item["job_id"] for item in newest] == [failed["job_id"], held["job_id"]]
