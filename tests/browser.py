"""Headless Chromium from Debian's packages (``scripts/ci-install-chromium.sh``), for the
dashboard's browser test: the page's DOM after its script ran, and screenshots.

Without Chromium the test is skipped, except under CI (env ``CI`` set), where that is a
failure, as for the MariaDB tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

INSTALL_HINT = "install Debian's chromium (bash scripts/ci-install-chromium.sh)"
RENDER_BUDGET_MS = 4000
"""Virtual time Chromium gives the page's script (its fetches and first drawing)."""


def chromium() -> str:
    """The Chromium binary; skips the test without one (fails it under CI)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {INSTALL_HINT}")
        pytest.skip(f"no Chromium: {INSTALL_HINT}")
    return binary


def _headless(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={RENDER_BUDGET_MS}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def rendered_dom(url: str, ready: Callable[[str], bool], timeout: float = 30.0) -> str:
    """The DOM of ``url`` once its script drew what ``ready`` looks for (loads it again until
    then, up to ``timeout`` seconds); ``AssertionError`` with the last DOM otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        dom = _headless("--dump-dom", url).stdout
        if ready(dom) or time.monotonic() > deadline:
            assert ready(dom), f"{url} never showed what the test waits for:\n{dom[:4000]}"
            return dom


def screenshot(url: str, path: Path, width: int = 1200, height: int = 760) -> None:
    """A PNG of ``url`` after its script ran."""
    _headless(f"--window-size={width},{height}", f"--screenshot={path}", url)
