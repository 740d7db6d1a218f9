"""CancelJob on the embedded cluster: the running task's executor dies within a second, and the
slot (the cluster's only one) runs the next job's task."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cancel_jobs import check_cancel_kills_the_running_task
from tests.e2e.embedded.cluster_process import embedded_cluster
from tests.integration.storage_service.grpc_client import StorageClient, StubModules


def test_cancel_kills_the_running_task_and_the_slot_runs_the_next_job(
    tmp_path: Path, stub_modules: StubModules
) -> None:
    with embedded_cluster(tmp_path) as cluster:
        client = StorageClient.connect(stub_modules, cluster.storage_port)
        try:
            check_cancel_kills_the_running_task(client, tmp_path / "task.pid")
        finally:
            client.close()
