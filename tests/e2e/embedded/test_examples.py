"""The examples in ``examples/`` run as a new user runs them, and give the right answers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from spider.cli import main as spider_cli
from tests.e2e.embedded.cluster_process import embedded_cluster

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_quickstart_runs_the_word_count_and_prints_it() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Succeeded, 8 tasks" in result.stdout
    rows = {
        cells[0]: int(cells[1])
        for line in result.stdout.splitlines()
        if len(cells := [cell.strip() for cell in line.strip("│ ").split("│")]) == 2
        and cells[1].isdigit()
    }
    sys.path.insert(0, str(EXAMPLES))
    try:
        import wordcount
    finally:
        sys.path.remove(str(EXAMPLES))
    assert rows == {word.decode(): n for word, n in Counter(wordcount.TEXT.split()).items()}


@pytest.mark.parametrize("example", ["wordcount.py", "nn.py"])
def test_the_example_jobs_succeed_through_the_cli(
    tmp_path: Path, example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with embedded_cluster(tmp_path, package_dir=EXAMPLES / "packages") as cluster:
        storage = f"127.0.0.1:{cluster.storage_port}"
        status = spider_cli(
            ["--storage", storage, "--json", "submit", str(EXAMPLES / example), "--wait"]
        )
        out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(out.splitlines()[-1])
    assert result["state"] == "Succeeded"
    assert len(result["outputs"]) == 1 if example == "wordcount.py" else 8


def test_the_commit_example_retries_its_flaky_task_then_publishes_the_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = {"SPIDER_EXAMPLES_STATE_DIR": str(state_dir)}
    with embedded_cluster(tmp_path, package_dir=EXAMPLES / "packages", executor_env=env) as cluster:
        storage = f"127.0.0.1:{cluster.storage_port}"
        example = str(EXAMPLES / "commit_and_cleanup.py")
        status = spider_cli(["--storage", storage, "--json", "submit", example, "--wait"])
        out = capsys.readouterr().out
    assert status == 0, out
    assert json.loads(out.splitlines()[-1])["outputs"] == [42, 100]
    (commit,) = state_dir.glob("commit-*")
    assert commit.read_text() == "42\n100\n"
    attempts = sorted(path.read_text() for path in state_dir.glob("attempts-*"))
    assert attempts == ["1\n", "1\n2\n"]  # the flaky task failed once, then succeeded
    assert list(state_dir.glob("cleanup-*")) == []
