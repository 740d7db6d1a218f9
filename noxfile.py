"""Developer sessions: ``nox -s lint typing tests`` is the gate every change passes."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
BENCHMARKS = sorted(str(path) for path in Path("benchmarks").glob("*.py") if path.stem != "_common")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the executor, tests and benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, with branch coverage."""
    session.install("-e", ".[dev]")
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def proto(session: nox.Session) -> None:
    """Regenerate spider/proto from protos/ (commit the result)."""
    session.install("-e", ".[dev]")
    session.run("python", "tools/gen_protos.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmark and print its tables."""
    session.install("-e", ".[dev]")
    for script in session.posargs or BENCHMARKS:
        session.run("python", script)
