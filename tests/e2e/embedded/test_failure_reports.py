"""A failed task, read back with ``spider error``: upstream's first line, which task it was and
where it ran, and the task's own traceback (docs/execution-manager.md, "Failure messages sent to
storage")."""

from __future__ import annotations

import json
from pathlib import Path

from spider.cli import CliExit
from tests.e2e.embedded.cluster_process import embedded_cluster, spider_json

FAILING_JOB = {
    "graph": {
        "schema_version": "0.1.0",
        "tasks": [
            {
                "tdl_context": {"package": "integration_test_tasks", "task_func": "always_fail"},
                "inputs": [],
                "outputs": [],
                "input_sources": None,
            }
        ],
        "commit_task": None,
        "cleanup_task": None,
    },
    "inputs": [],
}


def test_spider_error_names_the_task_and_shows_its_traceback(tmp_path: Path) -> None:
    job_file = tmp_path / "failing.json"
    job_file.write_text(json.dumps(FAILING_JOB))
    with embedded_cluster(tmp_path) as cluster:
        code, waited = spider_json(cluster.storage_port, "submit", "--wait", str(job_file))
        assert (code, waited["state"]) == (CliExit.JOB_UNSUCCESSFUL, "Failed"), waited
        code, read = spider_json(cluster.storage_port, "error", str(waited["job_id"]))
        listed_code, listed = spider_json(cluster.storage_port, "jobs", "--state", "Failed")
        tasks_code, tasks = spider_json(cluster.storage_port, "tasks", str(waited["job_id"]))
    assert (listed_code, [job["job_id"] for job in listed["jobs"]]) == (
        CliExit.OK,
        [waited["job_id"]],
    )
    assert listed["jobs"][0]["error"] == waited["error"].splitlines()[0]
    assert (tasks_code, tasks["job_state"], tasks["counts"]) == (
        CliExit.OK,
        "Failed",
        {"Failed": 1},
    )
    [task] = tasks["tasks"]
    assert (task["task"], task["function"], task["instances"]) == (
        "0",
        "integration_test_tasks::always_fail",
        1,
    )
    assert task["error"] == waited["error"].splitlines()[0]
    assert task["started_at"] <= task["ended_at"]
    assert code == CliExit.OK
    assert read["error"] == waited["error"]
    first, task, *traceback = read["error"].splitlines()
    assert first == "in-task failure: ValueError: always_fail: intentional failure"
    assert task.startswith(
        f"task 0 (integration_test_tasks::always_fail) of job {waited['job_id']}, instance "
    )
    assert "on execution manager " in task
    assert traceback[0] == "Traceback (most recent call last):"
    assert any("raise ValueError" in line for line in traceback)
    assert traceback[-1] == "ValueError: always_fail: intentional failure"
