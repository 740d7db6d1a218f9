"""The executor's package cache, task runner and settings, in-process."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import ormsgpack
import pytest

from executor_bin._runner import INTERNAL_ERROR_KIND, PackageCache, TaskRunner
from executor_bin._settings import Settings, SettingsError
from spider.core import (
    JobId,
    ResourceGroupId,
    TaskContext,
    TaskId,
    TaskInstanceId,
    decode_frame,
    encode_frame,
)
from spider.executor import Execute, Failure, Success
from spider.tdl import InvalidPackageName, PackageInitError, PackageNotFound, TdlPackage

CONTEXT = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(1)).encode()


def write_package(package_dir: Path, name: str, source: str) -> None:
    (package_dir / name).mkdir(parents=True)
    (package_dir / name / "__init__.py").write_text(textwrap.dedent(source))


def request(package: str, task: str, *values: object) -> Execute:
    inputs = encode_frame([ormsgpack.packb(value) for value in values])
    return Execute(package, task, CONTEXT, inputs)


COUNTING_INIT = """
from pathlib import Path

from spider.tdl import on_load, task

@on_load
def initialize() -> None:
    marker = Path(__file__).with_name("calls")
    marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
    {body}

@task
def double(n: int) -> int:
    return 2 * n

@task
def explode(message: str) -> None:
    raise KeyError(message)
"""


def test_a_loaded_package_is_cached(tmp_path: Path) -> None:
    write_package(tmp_path, "fine", COUNTING_INIT.format(body="pass"))
    cache = PackageCache(tmp_path)
    first = cache.get("fine")
    assert isinstance(first, TdlPackage)
    assert cache.get("fine") is first
    assert (tmp_path / "fine" / "calls").read_text() == "x"


def test_an_init_failure_is_cached_and_reraised_without_growing(tmp_path: Path) -> None:
    write_package(tmp_path, "failing", COUNTING_INIT.format(body="raise RuntimeError('nope')"))
    cache = PackageCache(tmp_path)
    errors = []
    for _ in range(3):
        with pytest.raises(PackageInitError, match="RuntimeError: nope") as caught:
            cache.get("failing")
        errors.append(caught.value)
    assert errors[0] is errors[1] is errors[2]
    assert (tmp_path / "failing" / "calls").read_text() == "x"


def test_not_found_and_invalid_names_are_not_cached(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path)
    with pytest.raises(PackageNotFound):
        cache.get("later")
    with pytest.raises(InvalidPackageName):
        cache.get("../later")
    write_package(tmp_path, "later", COUNTING_INIT.format(body="pass"))
    assert isinstance(cache.get("later"), TdlPackage)


def test_the_runner_reports_success_and_task_failures(tmp_path: Path) -> None:
    write_package(tmp_path, "pkg", COUNTING_INIT.format(body="pass"))
    runner = TaskRunner(PackageCache(tmp_path), max_frame_bytes=1 << 20)
    success = runner.run(request("pkg", "double", 21))
    assert isinstance(success, Success)
    assert success.outputs == encode_frame([ormsgpack.packb(42)])
    failure = runner.run(request("pkg", "explode", "boom"))
    assert isinstance(failure, Failure)
    assert (failure.kind, failure.exc_type) == ("execution", "KeyError")
    assert failure.message == "KeyError: 'boom'"
    assert failure.traceback is not None
    assert "raise KeyError(message)" in failure.traceback
    not_found = runner.run(request("pkg", "missing"))
    assert isinstance(not_found, Failure)
    assert (not_found.kind, not_found.exc_type, not_found.traceback) == (
        "task_not_found",
        None,
        None,
    )
    bad_inputs = runner.run(Execute("pkg", "double", CONTEXT, b"\x01"))
    assert isinstance(bad_inputs, Failure)
    assert bad_inputs.kind == "deserialization"


def test_long_failure_texts_are_cut_to_fit_a_frame(tmp_path: Path) -> None:
    write_package(tmp_path, "pkg", COUNTING_INIT.format(body="pass"))
    runner = TaskRunner(PackageCache(tmp_path), max_frame_bytes=8192)
    failure = runner.run(request("pkg", "explode", "m" * 5000))
    assert isinstance(failure, Failure)
    assert len(failure.message) < 1100
    assert failure.message.startswith("KeyError: 'mmm")
    assert failure.message.endswith("more chars]")
    assert failure.traceback is not None
    assert len(failure.traceback) < 1100
    assert failure.traceback.startswith("[")
    assert failure.traceback.rstrip().endswith("m'")


class _BrokenCache(PackageCache):
    def get(self, name: str) -> TdlPackage:
        raise AttributeError(f"bug while loading {name}")


def test_an_exception_outside_the_tdl_is_an_internal_failure(tmp_path: Path) -> None:
    runner = TaskRunner(_BrokenCache(tmp_path), max_frame_bytes=1 << 20)
    failure = runner.run(request("pkg", "task"))
    assert isinstance(failure, Failure)
    assert failure.kind == INTERNAL_ERROR_KIND
    assert failure.exc_type == "AttributeError"
    assert "internal executor error running pkg::task: AttributeError: bug while loading pkg" in (
        failure.message
    )


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    settings = Settings.from_environment({"SPIDER_TDL_PACKAGE_DIR": str(tmp_path)})
    assert settings == Settings(tmp_path, 8 * 1024 * 1024, 20)
    settings = Settings.from_environment(
        {
            "SPIDER_TDL_PACKAGE_DIR": str(tmp_path),
            "SPIDER_EXECUTOR_MAX_FRAME_BYTES": "4096",
            "SPIDER_LOG_LEVEL": "warning",
        }
    )
    assert settings == Settings(tmp_path, 4096, 30)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "SPIDER_TDL_PACKAGE_DIR is not set"),
        ({"SPIDER_TDL_PACKAGE_DIR": "/no/such/dir"}, "does not exist"),
        ({"SPIDER_TDL_PACKAGE_DIR": "{tmp}", "SPIDER_LOG_LEVEL": "chatty"}, "not a log level"),
        ({"SPIDER_TDL_PACKAGE_DIR": "{tmp}", "SPIDER_EXECUTOR_MAX_FRAME_BYTES": "1e6"}, "invalid"),
    ],
)
def test_settings_errors_name_the_variable(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    resolved = {key: value.format(tmp=tmp_path) for key, value in env.items()}
    with pytest.raises(SettingsError, match=needle):
        Settings.from_environment(resolved)


def test_settings_read_several_package_dirs_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    raw = f"{second}{os.pathsep}{first}"
    settings = Settings.from_environment({"SPIDER_TDL_PACKAGE_DIR": raw})
    assert settings.package_dir == (second, first)


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        (["{tmp}", "{tmp}/missing"], r"directory '.*/missing' does not exist"),
        (["{tmp}/file", "{tmp}"], r"directory '.*/file' is not a directory"),
        (["{tmp}", ""], "has an empty entry"),
    ],
)
def test_every_package_dir_is_checked_and_the_bad_one_named(
    tmp_path: Path, entries: list[str], needle: str
) -> None:
    (tmp_path / "file").write_text("")
    raw = os.pathsep.join(entry.format(tmp=tmp_path) for entry in entries)
    with pytest.raises(SettingsError, match=needle) as caught:
        Settings.from_environment({"SPIDER_TDL_PACKAGE_DIR": raw})
    assert str(caught.value).startswith("SPIDER_TDL_PACKAGE_DIR=")


def test_the_cache_finds_packages_in_every_directory_first_one_first(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_package(
        first, "shared", "from spider.tdl import task\n\n@task\ndef one() -> int:\n    return 1\n"
    )
    write_package(
        second, "shared", "from spider.tdl import task\n\n@task\ndef one() -> int:\n    return 2\n"
    )
    write_package(second, "only_second", COUNTING_INIT.format(body="pass"))
    runner = TaskRunner(PackageCache([first, second]), max_frame_bytes=1 << 20)
    assert isinstance(outcome := runner.run(request("shared", "one")), Success)
    assert ormsgpack.unpackb(decode_frame(outcome.outputs)[0]) == 1
    assert isinstance(outcome := runner.run(request("only_second", "double", 21)), Success)
    assert ormsgpack.unpackb(decode_frame(outcome.outputs)[0]) == 42
    missing = runner.run(request("nowhere", "task"))
    assert isinstance(missing, Failure)
    assert missing.kind == "package_not_found"
    assert str(first / "nowhere") in missing.message
    assert str(second / "nowhere") in missing.message
