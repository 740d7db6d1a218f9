"""Several package directories: the search order, the path checks in each, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from spider.tdl import InvalidPackageName, PackageNotFound, load_package, package_names
from tests.unit.tdl.test_tdl_package import run, write_package


def which(directory: Path, name: str, answer: str) -> None:
    """Package ``name`` in ``directory`` with one task, ``which``, returning ``answer``."""
    write_package(
        directory,
        name,
        {
            "__init__.py": f"""
                from spider.tdl import task

                @task
                def which() -> str:
                    return {answer!r}
            """,
        },
    )


def test_each_package_comes_from_the_directory_holding_it(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    which(first, "alpha", "alpha in first")
    which(second, "beta", "beta in second")
    assert run(load_package([first, second], "alpha"), "which") == ["alpha in first"]
    beta = load_package([first, second], "beta")
    assert run(beta, "which") == ["beta in second"]
    assert beta.path == second.resolve() / "beta"


def test_the_first_directory_holding_the_package_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    which(first, "same", "first")
    which(second, "same", "second")
    assert run(load_package([first, second], "same"), "which") == ["first"]
    assert run(load_package([second, first], "same"), "which") == ["second"]


def test_a_directory_without_init_py_does_not_hide_a_later_package(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "data").mkdir(parents=True)  # a directory of that name, but not a package
    which(second, "data", "second")
    assert run(load_package([first, second], "data"), "which") == ["second"]


def test_a_package_not_found_names_every_directory_searched(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for directory in dirs:
        directory.mkdir()
    with pytest.raises(PackageNotFound) as caught:
        load_package(dirs, "nope")
    message = str(caught.value)
    assert message.startswith("TDL package 'nope' not found: none of ")
    for directory in dirs:
        assert repr(str(directory / "nope" / "__init__.py")) in message
    assert "searched in that order" in message
    assert caught.value.kind == "package_not_found"


def test_a_symlink_leaving_its_own_directory_is_refused_even_into_another_package_dir(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    which(second, "target", "second")
    first.mkdir()
    # Both directories are vetted, but a package must live inside the one it is found in.
    (first / "target").symlink_to(second / "target", target_is_directory=True)
    with pytest.raises(InvalidPackageName, match=r"outside the package directory '.*first'"):
        load_package([first, second], "target")
    (first / "sneaky").mkdir()
    which(second, "other", "second")
    (first / "sneaky" / "__init__.py").symlink_to(second / "other" / "__init__.py")
    with pytest.raises(InvalidPackageName, match="outside the package directory"):
        load_package([first, second], "sneaky")


def test_a_refused_package_is_not_replaced_by_one_from_a_later_directory(tmp_path: Path) -> None:
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    which(outside, "evil", "outside")
    first.mkdir()
    (first / "evil").symlink_to(outside / "evil", target_is_directory=True)
    which(second, "evil", "second")
    with pytest.raises(InvalidPackageName, match="outside the package directory"):
        load_package([first, second], "evil")
    (first / "odd" / "__init__.py").mkdir(parents=True)
    which(second, "odd", "second")
    with pytest.raises(PackageNotFound, match="is not a file"):
        load_package([first, second], "odd")


def test_a_traversing_name_is_refused_before_any_directory_is_searched(tmp_path: Path) -> None:
    which(tmp_path, "escape", "outside")
    inner = tmp_path / "inner"
    inner.mkdir()
    with pytest.raises(InvalidPackageName, match="only letters, digits"):
        load_package([tmp_path / "missing", inner], "../escape")


def test_a_missing_directory_searched_before_the_package_is_an_error(tmp_path: Path) -> None:
    which(tmp_path / "second", "pkg", "second")
    with pytest.raises(PackageNotFound, match=r"package directory '.*missing' is not accessible"):
        load_package([tmp_path / "missing", tmp_path / "second"], "pkg")
    # After the package is found, later directories are not looked at.
    assert run(load_package([tmp_path / "second", tmp_path / "missing"], "pkg"), "which") == [
        "second"
    ]


def test_package_names_lists_the_packages_a_directory_holds(tmp_path: Path) -> None:
    which(tmp_path, "one", "1")
    which(tmp_path, "two-2", "2")
    (tmp_path / "not_a_package").mkdir()
    (tmp_path / "bad name").mkdir()
    (tmp_path / "bad name" / "__init__.py").write_text("")
    (tmp_path / "file.py").write_text("")
    (tmp_path / "linked").symlink_to(tmp_path / "one", target_is_directory=True)
    assert package_names(tmp_path) == ["linked", "one", "two-2"]
    with pytest.raises(PackageNotFound, match="is not accessible"):
        package_names(tmp_path / "missing")
    with pytest.raises(PackageNotFound, match="is not a directory"):
        package_names(tmp_path / "file.py")
