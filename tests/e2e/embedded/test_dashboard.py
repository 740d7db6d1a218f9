"""The dashboard in a real browser: headless Chromium opens the embedded cluster's dashboard
after jobs ran, and the DOM its script drew must show each job's task graph (one node per task,
one edge per parent) with the states storage reports, the failed task's error, and the cluster
overview (docs/dashboard.md)."""

from __future__ import annotations

import json
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import attrs

from spider.cli import CliExit
from tests.browser import rendered_dom
from tests.e2e.embedded.cluster_process import embedded_cluster, spider_json

INT = {"Value": {"Primitive": {"Int": "Int64"}}}
RETRY_ONCE_AT_ONCE = {
    "max_num_retry": 1,
    "max_num_instances": 1,
    "timeout_policy": {"soft_timeout_ms": 150000, "hard_timeout_ms": 300000},
    "retry_delay": {"first_ms": 10, "max_ms": 10},
}


def _add(sources: list[dict[str, int]] | None) -> dict[str, Any]:
    return {
        "tdl_context": {"package": "integration_test_tasks", "task_func": "add"},
        "inputs": [INT, INT],
        "outputs": [INT],
        "input_sources": sources,
    }


# A diamond of additions: 0 -> 1, 0 -> 2, (1, 2) -> 3.
DIAMOND = {
    "graph": {
        "schema_version": "0.1.0",
        "tasks": [
            _add(None),
            _add([{"task_idx": 0, "position": 0}, {"task_idx": 0, "position": 0}]),
            _add([{"task_idx": 0, "position": 0}, {"task_idx": 0, "position": 0}]),
            _add([{"task_idx": 1, "position": 0}, {"task_idx": 2, "position": 0}]),
        ],
        "commit_task": None,
        "cleanup_task": None,
    },
    "inputs": [20, 22],
}
# One task that fails twice (a retry), and one addition beside it.
FAILING = {
    "graph": {
        "schema_version": "0.1.0",
        "tasks": [
            {
                "tdl_context": {"package": "integration_test_tasks", "task_func": "always_fail"},
                "execution_policy": RETRY_ONCE_AT_ONCE,
                "inputs": [],
                "outputs": [],
                "input_sources": None,
            },
            _add(None),
        ],
        "commit_task": None,
        "cleanup_task": None,
    },
    "inputs": [1, 2],
}


@attrs.define
class DrawnJob(HTMLParser):
    """What the job page drew: task nodes, edges, the job's state and the errors shown."""

    nodes: dict[str, str] = attrs.field(factory=dict)
    edges: set[tuple[str, str]] = attrs.field(factory=set)
    job_state: str | None = None
    job_error: str = ""
    task_errors: dict[str, str] = attrs.field(factory=dict)
    _reading: tuple[str, str] | None = None

    def __attrs_post_init__(self) -> None:
        HTMLParser.__init__(self)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "g" and found.get("class") == "task":
            self.nodes[found["data-task"]] = found["data-state"]
        elif tag == "path" and found.get("class") == "edge":
            self.edges.add((found["data-from"], found["data-to"]))
        elif found.get("id") == "job-state":
            self.job_state = found["data-state"]
        elif found.get("id") == "job-error":
            self._reading = ("job", "")
        elif found.get("class") == "task-error":
            self._reading = ("task", found["data-task"])

    def handle_data(self, data: str) -> None:
        if self._reading == ("job", ""):
            self.job_error += data
        elif self._reading is not None:
            self.task_errors[self._reading[1]] = self.task_errors.get(self._reading[1], "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("pre", "span"):
            self._reading = None


def drawn(dom: str) -> DrawnJob:
    parser = DrawnJob()
    parser.feed(dom)
    return parser


def _submit(tmp_path: Path, port: int, name: str, job: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(job))
    _, waited = spider_json(port, "submit", "--wait", str(path))
    return waited


def test_the_job_page_draws_the_graph_with_the_states_storage_reports(tmp_path: Path) -> None:
    with embedded_cluster(tmp_path) as cluster:
        assert cluster.dashboard_url is not None
        port = cluster.storage_port
        diamond = _submit(tmp_path, port, "diamond", DIAMOND)
        failing = _submit(tmp_path, port, "failing", FAILING)
        assert (diamond["state"], failing["state"]) == ("Succeeded", "Failed")
        code, diamond_tasks = spider_json(port, "tasks", str(diamond["job_id"]))
        assert code == CliExit.OK
        code, failing_tasks = spider_json(port, "tasks", str(failing["job_id"]))
        assert code == CliExit.OK

        succeeded = drawn(
            rendered_dom(
                f"{cluster.dashboard_url}#/jobs/{diamond['job_id']}",
                lambda dom: 'id="job-state"' in dom and 'class="task"' in dom,
            )
        )
        failed = drawn(
            rendered_dom(
                f"{cluster.dashboard_url}#/jobs/{failing['job_id']}",
                lambda dom: 'id="job-error"' in dom and 'class="task-error"' in dom,
            )
        )
        overview = rendered_dom(
            cluster.dashboard_url, lambda dom: 'id="throughput"' in dom and "127.0.0.1" in dom
        )
        with urllib.request.urlopen(f"{cluster.dashboard_url}api/overview", timeout=30) as reply:
            api_overview = json.load(reply)

    # The graph: a node per task in the state storage reports, an edge per parent.
    assert succeeded.job_state == "Succeeded"
    assert succeeded.nodes == {task["task"]: task["state"] for task in diamond_tasks["tasks"]}
    assert succeeded.nodes == dict.fromkeys(["0", "1", "2", "3"], "Succeeded")
    assert succeeded.edges == {("0", "1"), ("0", "2"), ("1", "3"), ("2", "3")}

    # The failed job: its state, its error in full, and the failed task's last error.
    assert failed.job_state == "Failed"
    assert failed.nodes == {task["task"]: task["state"] for task in failing_tasks["tasks"]}
    assert failed.nodes["0"] == "Failed"
    assert failed.job_error == failing["error"]
    assert failed.task_errors == {"0": failing["error"].splitlines()[0]}
    assert failing_tasks["tasks"][0]["instances"] == 2

    # The overview names the EM and plots the throughput from storage's counters.
    assert "Execution managers (1 alive, 0 dead)" in overview
    assert api_overview["status"]["task_outcomes"]["succeeded"] >= 5
    assert api_overview["status"]["task_outcomes"]["failed"] == 2
