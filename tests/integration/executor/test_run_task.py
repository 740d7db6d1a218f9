"""The README's first command: run a task of the demo package in a real executor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "packages"


def run_task(
    *args: str, package_dirs: tuple[Path, ...] = (EXAMPLES,)
) -> subprocess.CompletedProcess[str]:
    flags = [flag for directory in package_dirs for flag in ("--package-dir", str(directory))]
    return subprocess.run(
        [sys.executable, "-m", "spider.executor.run_task", *flags, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_the_outputs_of_a_task() -> None:
    result = run_task("demo", "demo::fibonacci", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "6765\n"
    assert "µs in the executor" in result.stderr


def test_several_outputs_are_printed_one_per_line() -> None:
    result = run_task("demo", "demo::divide", "7.0", "2.0")
    assert (result.returncode, result.stdout) == (0, "3.0\n1.0\n")


def test_a_failing_task_shows_its_exception_and_exits_1() -> None:
    result = run_task("demo", "demo::divide", "1.0", "0.0")
    assert result.returncode == 1
    assert "task failed (execution): ZeroDivisionError" in result.stderr
    assert ", in divide" in result.stderr  # the task's own traceback


def test_bad_arguments_are_explained() -> None:
    not_literal = run_task("demo", "demo::fibonacci", "x")
    assert (not_literal.returncode, not_literal.stderr.strip()) == (
        2,
        "error: input 'n': 'x' is not a Python literal",
    )
    wrong_count = run_task("demo", "demo::fibonacci")
    assert wrong_count.returncode == 2
    assert "takes 1 inputs (n)" in wrong_count.stderr
    unknown = run_task("demo", "demo::nope")
    assert "has no task 'demo::nope'" in unknown.stderr
    traversal = run_task("../demo", "demo::fibonacci", "1")
    assert traversal.returncode == 2
    assert "only letters, digits" in traversal.stderr


def test_a_package_from_a_later_package_dir_runs_in_the_executor(tmp_path: Path) -> None:
    # The executor gets both directories in SPIDER_TDL_PACKAGE_DIR and searches them in order.
    result = run_task("demo", "demo::fibonacci", "10", package_dirs=(tmp_path, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "55\n"
