"""``package_dir``: one directory or several, and their ``SPIDER_TDL_PACKAGE_DIR`` form."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.executor import ExecutorConfig
from spider.executor.protocol import (
    ENV_PACKAGE_DIR,
    decode_package_dir,
    encode_package_dir,
    validate_package_dir,
)

# Directory paths as an operator writes them: anything but NUL and the list separator.
ENTRY = st.text(
    st.characters(exclude_characters=f"\0{os.pathsep}", exclude_categories=["Cs"]), min_size=1
)


@given(st.lists(ENTRY, min_size=1, max_size=5))
def test_the_directories_round_trip_through_the_variable(entries: list[str]) -> None:
    directories = validate_package_dir(entries)
    assert decode_package_dir(encode_package_dir(directories)) == directories


@given(ENTRY)
def test_one_directory_is_its_path_alone(entry: str) -> None:
    # What a single-directory executor (upstream's) reads is unchanged.
    assert encode_package_dir(validate_package_dir(entry)) == str(Path(entry))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "it is empty"),
        (os.pathsep, "has an empty entry"),
        (f"/a{os.pathsep}", "has an empty entry"),
        (f"{os.pathsep}/a", "has an empty entry"),
        (f"/a{os.pathsep}{os.pathsep}/b", "has an empty entry"),
    ],
)
def test_an_empty_entry_is_refused_not_read_as_the_current_directory(
    text: str, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        decode_package_dir(text)


def test_the_list_keeps_its_order() -> None:
    assert decode_package_dir(f"/b{os.pathsep}/a{os.pathsep}/c") == (
        Path("/b"),
        Path("/a"),
        Path("/c"),
    )


def test_one_path_or_several_are_accepted() -> None:
    assert validate_package_dir("/p") == (Path("/p"),)
    assert validate_package_dir(Path("/p")) == (Path("/p"),)
    assert validate_package_dir(["/a", Path("/b")]) == (Path("/a"), Path("/b"))
    assert validate_package_dir(("/a",)) == (Path("/a"),)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ([], "must name at least one directory"),
        (["/a", ""], "entries must be directory paths, got ''"),
        (["/a", 3], "entries must be directory paths, got 3"),
        (["/a", None], "entries must be directory paths, got None"),
        (5, "must be a directory or a list of directories, got 5"),
        ({"/a": 1}, "must be a directory or a list of directories"),
        (b"/a", "must be a directory or a list of directories"),
        ([f"/a{os.pathsep}/b"], f"contains {os.pathsep!r}, which separates directories in"),
    ],
)
def test_bad_entries_are_refused_by_name(value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        validate_package_dir(value)  # type: ignore[arg-type]


def test_the_executor_gets_every_directory_in_one_variable(tmp_path: Path) -> None:
    one = ExecutorConfig(package_dir=tmp_path)
    assert one.package_dir == (tmp_path,)
    assert one.child_environment()[ENV_PACKAGE_DIR] == str(tmp_path)
    several = ExecutorConfig(package_dir=[tmp_path / "a", tmp_path / "b"])
    assert several.child_environment()[ENV_PACKAGE_DIR] == (
        f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    )
