"""Fixtures of the EM runtime's integration tests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from . import em_harness
from .em_harness import build_package_dir


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test packages, copied together into one package directory."""
    return build_package_dir(tmp_path_factory.mktemp("em_packages"))


@pytest.fixture(autouse=True)
def _capture_em_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spider.em")


@pytest.fixture(autouse=True, params=["extension", "upstream"])
def peers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against peers serving Spider-py's execution extension and against peers
    that do not (upstream Spider's services answer its methods UNIMPLEMENTED)."""
    monkeypatch.setattr(em_harness, "SERVE_EXTENSION", request.param == "extension")
    name: str = request.param
    return name
