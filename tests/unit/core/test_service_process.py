"""The services' entry points lower the interpreter's thread switch interval before they run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spider.core.service_cli import SERVICE_SWITCH_INTERVAL, tune_thread_switching
from spider.em import main as em_main
from spider.scheduler import cli as scheduler_cli
from spider.storage import cli as storage_cli


@pytest.fixture(autouse=True)
def restore_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_tuning_sets_the_service_interval() -> None:
    sys.setswitchinterval(0.005)
    tune_thread_switching()
    assert sys.getswitchinterval() == pytest.approx(SERVICE_SWITCH_INTERVAL)


def _record_interval_at_run(seen: list[float], result: object) -> Callable[..., Any]:
    def run(*args: object, **kwargs: object) -> object:
        seen.append(sys.getswitchinterval())
        return result

    return run


@pytest.mark.parametrize(
    ("module", "argv", "result"),
    [
        (
            em_main,
            ["--storage", "127.0.0.1:1", "--scheduler", "127.0.0.1:2", "--package-dir", "."],
            0,
        ),
        (scheduler_cli, ["--storage", "127.0.0.1:1"], None),
        (storage_cli, ["--data-dir", "."], None),
    ],
    ids=["em", "scheduler", "storage"],
)
def test_a_service_runs_with_the_service_interval(
    monkeypatch: pytest.MonkeyPatch, module: Any, argv: list[str], result: object
) -> None:
    sys.setswitchinterval(0.005)
    seen: list[float] = []
    monkeypatch.setattr(module.trio, "run", _record_interval_at_run(seen, result))
    # The test process keeps its own logging set-up.
    monkeypatch.setattr(module, "configure_logging", lambda **kwargs: None)
    module.main(argv)
    assert seen == [pytest.approx(SERVICE_SWITCH_INTERVAL)]
