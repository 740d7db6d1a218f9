"""The examples in ``examples/`` run as a new user runs them, and give the right answers."""

from __future__ import annotations

import subprocess
import sys
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
    from collections import Counter

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
    assert '"Succeeded"' in out or '"state": "Succeeded"' in out, out
