"""The services' entry points set the interpreter's thread switch interval before they run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.core.config import ConfigError
from spider.core.service_cli import (
    SERVICE_SWITCH_INTERVAL,
    SWITCH_INTERVAL_ENV,
    switch_interval,
    tune_thread_switching,
)
from spider.em import main as em_main
from spider.scheduler import cli as scheduler_cli
from spider.storage import cli as storage_cli

DEFAULT_INTERVAL = 0.005


@pytest.fixture(autouse=True)
def restore_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_service_interval_is_the_default_without_an_override() -> None:
    assert switch_interval({}) == SERVICE_SWITCH_INTERVAL


@given(st.floats(min_value=0.01, max_value=100.0))
def test_an_override_is_read_in_milliseconds(milliseconds: float) -> None:
    interval = switch_interval({SWITCH_INTERVAL_ENV: repr(milliseconds)})
    assert interval == pytest.approx(milliseconds / 1000)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "fast", ""])
def test_a_bad_override_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError, match=SWITCH_INTERVAL_ENV):
        switch_interval({SWITCH_INTERVAL_ENV: value})


def test_tuning_sets_the_interval() -> None:
    sys.setswitchinterval(DEFAULT_INTERVAL)
    tune_thread_switching(SERVICE_SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(SERVICE_SWITCH_INTERVAL)


def _record_interval_at_run(seen: list[float], result: object) -> Callable[..., Any]:
    def run(*args: object, **kwargs: object) -> object:
        seen.append(sys.getswitchinterval())
        return result

    return run


SERVICES = [
    pytest.param(
        em_main,
        ["--storage", "127.0.0.1:1", "--scheduler", "127.0.0.1:2", "--package-dir", "."],
        0,
        id="em",
    ),
    pytest.param(scheduler_cli, ["--storage", "127.0.0.1:1"], None, id="scheduler"),
    pytest.param(storage_cli, ["--data-dir", "."], None, id="storage"),
]


@pytest.mark.parametrize(("module", "argv", "result"), SERVICES)
def test_a_service_runs_with_the_service_interval(
    monkeypatch: pytest.MonkeyPatch, module: Any, argv: list[str], result: object
) -> None:
    sys.setswitchinterval(DEFAULT_INTERVAL)
    monkeypatch.delenv(SWITCH_INTERVAL_ENV, raising=False)
    seen: list[float] = []
    monkeypatch.setattr(module.trio, "run", _record_interval_at_run(seen, result))
    # The test process keeps its own logging set-up.
    monkeypatch.setattr(module, "configure_logging", lambda **kwargs: None)
    module.main(argv)
    assert seen == [pytest.approx(SERVICE_SWITCH_INTERVAL)]


@pytest.mark.parametrize(("module", "argv", "result"), SERVICES)
def test_a_bad_override_stops_a_service_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: Any,
    argv: list[str],
    result: object,
) -> None:
    monkeypatch.setenv(SWITCH_INTERVAL_ENV, "fast")
    seen: list[float] = []
    monkeypatch.setattr(module.trio, "run", _record_interval_at_run(seen, result))
    assert module.main(argv) == 2
    assert seen == []
    assert SWITCH_INTERVAL_ENV in capsys.readouterr().err
