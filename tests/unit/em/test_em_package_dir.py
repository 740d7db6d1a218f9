"""``task_executor.package_dir``: one directory or several, from the file, the environment and
the flags, and the check that refuses a bad list before the EM starts."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spider.core.config import ConfigError
from spider.em.config import ExecutionManagerConfig, load_em_config
from spider.em.main import EmExit, main
from spider.em.package_dir import check_package_dir
from spider.em.stop import EmStop


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; put back pytest's handlers afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def from_yaml(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[Path]:
    path = tmp_path / "em.yaml"
    path.write_text(textwrap.dedent(text))
    return list(load_em_config(path, environ=environ or {}).pool_config().package_dir)


def package(directory: Path, name: str) -> None:
    (directory / name).mkdir(parents=True)
    (directory / name / "__init__.py").write_text("")


def test_one_path_as_before_or_a_list_in_order(tmp_path: Path) -> None:
    assert from_yaml(tmp_path, "task_executor: {package_dir: /opt/p}\n") == [Path("/opt/p")]
    listed = """
        task_executor:
          package_dir:
            - /srv/team-b
            - /opt/p
    """
    assert from_yaml(tmp_path, listed) == [Path("/srv/team-b"), Path("/opt/p")]
    assert from_yaml(tmp_path, "task_executor: {package_dir: [/only]}\n") == [Path("/only")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "package_dir must name at least one directory"),
        ("[/a, '']", "package_dir entries must be directory paths, got ''"),
        ("[/a, 3]", "package_dir entries must be directory paths, got 3"),
        ("[/a, null]", "package_dir entries must be directory paths, got None"),
        ("[/a, [/b]]", "package_dir entries must be directory paths, got ['/b']"),
        ("{a: 1}", "package_dir must be a directory or a list of directories"),
        ("null", "package_dir must be a directory or a list of directories, got None"),
        ("7", "package_dir must be a directory or a list of directories, got 7"),
        (
            f"['/a{os.pathsep}/b']",
            f"package_dir entry '/a{os.pathsep}/b' contains {os.pathsep!r}, which separates",
        ),
    ],
)
def test_bad_entries_are_refused_by_name(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_yaml(tmp_path, f"task_executor: {{package_dir: {value}}}\n")
    assert f"task_executor: {message}" in str(caught.value)


def test_the_environment_gives_several_directories_like_pythonpath(tmp_path: Path) -> None:
    environ = {"SPIDER_EM_PACKAGE_DIR": f"/b{os.pathsep}/a"}
    config = load_em_config(None, environ=environ)
    assert config.task_executor.package_dir == (Path("/b"), Path("/a"))
    assert load_em_config(
        None, environ={"SPIDER_EM_PACKAGE_DIR": "/one"}
    ).task_executor.package_dir == (Path("/one"),)
    # The variable replaces the file's list, as every variable replaces the file's value.
    assert from_yaml(tmp_path, "task_executor: {package_dir: [/x, /y]}\n", environ) == [
        Path("/b"),
        Path("/a"),
    ]


@pytest.mark.parametrize("value", ["", os.pathsep, f"/a{os.pathsep}", f"/a{os.pathsep * 2}/b"])
def test_an_empty_entry_in_the_environment_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"environment variable SPIDER_EM_PACKAGE_DIR: .*empty"):
        load_em_config(None, environ={"SPIDER_EM_PACKAGE_DIR": value})


def test_the_flag_repeats_and_replaces_the_file_s_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "em.yaml"
    path.write_text("task_executor: {package_dir: [/x, /y]}\n")
    argv = ["-c", str(path), "--package-dir", "/b", "--package-dir", "/a", "--print-config"]
    assert main(argv, environ={"SPIDER_EM_PACKAGE_DIR": "/z"}) == EmExit.STOPPED
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task_executor"]["package_dir"] == ["/b", "/a"]


def test_distinct_packages_in_several_directories_pass(tmp_path: Path) -> None:
    package(tmp_path / "a", "one")
    package(tmp_path / "b", "two")
    (tmp_path / "a" / "two").mkdir()  # not a package: no __init__.py
    (tmp_path / "c").mkdir()
    check_package_dir([tmp_path / "a", tmp_path / "b", tmp_path / "c"])


def test_a_package_in_two_directories_is_refused_naming_both_copies(tmp_path: Path) -> None:
    for directory in ("a", "b", "c"):
        package(tmp_path / directory, "shared")
    package(tmp_path / "a", "mine")
    with pytest.raises(ConfigError) as caught:
        check_package_dir([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    message = str(caught.value)
    assert message.startswith("task_executor.package_dir is invalid:")
    assert "package 'shared' is in more than one package directory" in message
    for directory in ("a", "b", "c"):
        assert repr(str(tmp_path / directory / "shared")) in message
    assert "'mine'" not in message


def test_a_directory_listed_twice_is_refused(tmp_path: Path) -> None:
    package(tmp_path / "a", "one")
    (tmp_path / "alias").symlink_to(tmp_path / "a", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"'.*/a' is listed twice"):
        check_package_dir([tmp_path / "a", tmp_path / "a"])
    with pytest.raises(ConfigError, match=r"'.*/a' and '.*/alias' are the same directory"):
        check_package_dir([tmp_path / "a", tmp_path / "alias"])


def test_every_unusable_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "locked").mkdir()
    (tmp_path / "good").mkdir()
    real_scandir = os.scandir

    def scandir(path: Path) -> object:
        # chmod would not stop root, who runs some of the test machines.
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ConfigError) as caught:
        check_package_dir(
            [tmp_path / "missing", tmp_path / "good", tmp_path / "file", tmp_path / "locked"]
        )
    lines = str(caught.value).splitlines()
    assert lines[0] == "task_executor.package_dir is invalid:"
    assert lines[1].startswith(
        f"  package directory {str(tmp_path / 'missing')!r} is not accessible"
    )
    assert lines[2] == f"  package directory {str(tmp_path / 'file')!r} is not a directory"
    assert lines[3].startswith(f"  package directory {str(tmp_path / 'locked')!r} cannot be listed")
    assert "Permission denied" in lines[3]
    assert len(lines) == 4


async def never_started(_config: ExecutionManagerConfig, _stop: EmStop) -> None:
    """The embedded cluster, which a refused configuration must not reach."""
    raise AssertionError("the execution manager started")


def test_the_command_line_refuses_a_bad_list_with_status_2_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package(tmp_path / "a", "shared")
    package(tmp_path / "b", "shared")
    flags = ["--package-dir", str(tmp_path / "a"), "--package-dir", str(tmp_path / "b")]
    assert main(flags, environ={}, embedded=never_started) == EmExit.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: task_executor.package_dir is invalid:")
    assert "package 'shared' is in more than one package directory" in err
    environ = {"SPIDER_EM_PACKAGE_DIR": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'gone'}"}
    assert main([], environ=environ, embedded=never_started) == EmExit.USAGE
    assert f"package directory {str(tmp_path / 'gone')!r} is not accessible" in (
        capsys.readouterr().err
    )
