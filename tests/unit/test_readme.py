"""CI must run exactly the README's test command, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section_command(readme: str, heading: str) -> str:
    section = readme.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL)
    assert match is not None, f"no bash block under '## {heading}'"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = _section_command(readme, "Run the tests")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_the_readme_main_command_uses_the_examples_that_exist() -> None:
    command = _section_command((ROOT / "README.md").read_text(), "Try it")
    # tests/e2e/embedded/test_examples.py runs the quickstart itself and checks its output.
    assert command.endswith(".venv/bin/python examples/quickstart.py")
    assert (ROOT / "examples" / "quickstart.py").is_file()
