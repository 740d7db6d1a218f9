"""Loading TDL packages: names, path confinement, private module names, hooks, failures, and
the search of several package directories."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import ormsgpack
import pytest

from spider.core import TaskContext, TaskId, decode_frame, encode_frame
from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.tdl import (
    MAX_PACKAGE_NAME_LENGTH,
    InvalidPackageName,
    PackageInitError,
    PackageNotFound,
    TaskNotFound,
    TdlContext,
    TdlDefinitionError,
    TdlPackage,
    definition_of,
    load_package,
    package_names,
    validate_package_name,
)

PACKAGES_DIR = Path(__file__).resolve().parents[2] / "packages"
CONTEXT = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(1)).encode()


def write_package(package_dir: Path, name: str, files: dict[str, str]) -> Path:
    """Create package ``name`` under ``package_dir`` from ``{relative path: source}``."""
    root = package_dir / name
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def run(package: TdlPackage, task_name: str, *values: object) -> list[object]:
    """Execute a task on msgpack-encoded ``values``; return its decoded outputs."""
    raw_inputs = encode_frame([ormsgpack.packb(value) for value in values])
    outputs = decode_frame(package.execute(task_name, CONTEXT, raw_inputs))
    return [ormsgpack.unpackb(output) for output in outputs]


def modules_under(module_name: str) -> list[str]:
    return [
        name for name in sys.modules if name == module_name or name.startswith(f"{module_name}.")
    ]


def test_loads_a_package_with_tasks_in_relatively_imported_submodules() -> None:
    package = load_package(PACKAGES_DIR, "integration_test_tasks")
    assert package.name == "integration_test_tasks"
    assert package.path == PACKAGES_DIR / "integration_test_tasks"
    assert set(package.tasks) == {
        "add",
        "always_abort",
        "always_fail",
        "assert_initialized",
        "assert_outputs_sum_zero",
        "cleanup_marker",
        "echo_bytes",
        "fibonacci",
        "produce_bytes",
        "sleep_and_echo",
        "spawn_grandchild_and_hang",
        "spawn_process_tree",
        "write_stderr",
    }
    # Tasks from the submodules `commit` and `process` belong to the package too.
    assert package.tasks["assert_outputs_sum_zero"].package == "integration_test_tasks"
    assert package.module_name.startswith("spider_tdl_packages.integration_test_tasks")
    assert f"{package.module_name}.commit" in sys.modules
    # The load hook ran: the task that checks it succeeds.
    assert run(package, "assert_initialized") == []


def test_tasks_carry_the_package_relative_tdl_context() -> None:
    package = load_package(PACKAGES_DIR, "complex")
    module = sys.modules[package.module_name]
    definition = definition_of(module.dot_product)
    assert definition is package.tasks["complex::dot_product"]
    assert definition.tdl_context == TdlContext("complex", "complex::dot_product")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x", "package name '../x' is invalid: only letters, digits, '_' and '-' are allowed"),
        (
            "x/../y",
            "package name 'x/../y' is invalid: only letters, digits, '_' and '-' are allowed",
        ),
        ("a/b", "only letters, digits, '_' and '-' are allowed"),
        ("/etc", "only letters, digits, '_' and '-' are allowed"),
        (".", "only letters, digits"),
        ("pkg.sub", "only letters, digits"),
        ("caf\u00e9", "only letters, digits"),
        ("name\x00", "only letters, digits"),
        ("", "package name '' is invalid: it has 0 characters, allowed are 1 to 128"),
        ("x" * 129, "it has 129 characters, allowed are 1 to 128"),
    ],
)
def test_invalid_names_are_rejected_before_touching_the_disk(name: str, message: str) -> None:
    with pytest.raises(InvalidPackageName) as caught:
        load_package(Path("/nonexistent"), name)
    assert message in str(caught.value)
    assert caught.value.kind == "invalid_package_name"


def test_a_name_must_be_a_string() -> None:
    with pytest.raises(InvalidPackageName, match="it must be a string"):
        validate_package_name(b"bytes")  # type: ignore[arg-type]


def test_the_longest_valid_name_is_accepted() -> None:
    validate_package_name("A-z_0" + "x" * (MAX_PACKAGE_NAME_LENGTH - 5))
    with pytest.raises(PackageNotFound, match="not found"):
        load_package(PACKAGES_DIR, "x" * MAX_PACKAGE_NAME_LENGTH)


def test_unknown_package_and_missing_init(tmp_path: Path) -> None:
    with pytest.raises(
        PackageNotFound, match=r"TDL package 'nope' not found: .*nope/__init__.py' does not exist"
    ) as caught:
        load_package(PACKAGES_DIR, "nope")
    assert caught.value.kind == "package_not_found"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageNotFound, match="'empty' not found"):
        load_package(tmp_path, "empty")
    with pytest.raises(PackageNotFound, match=r"package directory .* is not accessible"):
        load_package(tmp_path / "missing", "empty")
    (tmp_path / "odd" / "__init__.py").mkdir(parents=True)
    with pytest.raises(PackageNotFound, match=r"'odd' not found: .* is not a file"):
        load_package(tmp_path, "odd")
    (tmp_path / "file").write_text("")
    with pytest.raises(PackageNotFound, match="is not a directory"):
        load_package(tmp_path / "file", "empty")


def test_a_symlink_leaving_package_dir_is_refused(tmp_path: Path) -> None:
    outside = write_package(
        tmp_path / "outside", "evil", {"__init__.py": "raise SystemExit('must not run')"}
    )
    package_dir = tmp_path / "packages"
    package_dir.mkdir()
    (package_dir / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(
        InvalidPackageName,
        match=r"package name 'evil' is invalid: it resolves to .*outside the package directory",
    ):
        load_package(package_dir, "evil")
    # The same for a symlinked __init__.py in a real directory.
    (package_dir / "sneaky").mkdir()
    (package_dir / "sneaky" / "__init__.py").symlink_to(outside / "__init__.py")
    with pytest.raises(InvalidPackageName, match="outside the package directory"):
        load_package(package_dir, "sneaky")


def test_a_symlink_inside_package_dir_is_followed(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "real",
        {"__init__.py": "from spider.tdl import task\n\n@task\ndef one() -> int:\n    return 1\n"},
    )
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    package = load_package(tmp_path, "alias")
    assert package.name == "alias"
    assert run(package, "one") == [1]


def test_a_package_named_like_a_stdlib_module_does_not_shadow_it(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "json",
        {
            "__init__.py": """
                import json as real_json

                from spider.tdl import task

                @task
                def dumps(value: int) -> str:
                    return real_json.dumps({"value": value})
            """,
        },
    )
    real = sys.modules["json"]
    package = load_package(tmp_path, "json")
    assert sys.modules["json"] is real
    assert json.dumps([1]) == "[1]"
    # Inside the package, `import json` is the standard library, not the package itself.
    assert run(package, "dumps", 3) == ['{"value": 3}']


def test_two_package_dirs_with_the_same_package_name_do_not_collide(tmp_path: Path) -> None:
    for variant in ("first", "second"):
        write_package(
            tmp_path / variant,
            "same-name",
            {
                "__init__.py": "from . import impl\n",
                "impl.py": f"""
                    from spider.tdl import task

                    @task
                    def which() -> str:
                        return {variant!r}
                """,
            },
        )
    first = load_package(tmp_path / "first", "same-name")
    second = load_package(tmp_path / "second", "same-name")
    assert first.module_name != second.module_name
    assert run(first, "which") == ["first"]
    assert run(second, "which") == ["second"]


def test_a_failing_on_load_hook_fails_the_load(tmp_path: Path) -> None:
    with pytest.raises(PackageInitError) as caught:
        load_package(PACKAGES_DIR, "bad_init")
    error = caught.value
    assert error.kind == "package_init"
    assert str(error) == (
        "failed to initialize TDL package 'bad_init': "
        "RuntimeError: bad_init: initialization always fails"
    )
    assert error.exc_type == "RuntimeError"
    assert error.message == "bad_init: initialization always fails"
    assert 'raise RuntimeError("bad_init: initialization always fails")' in error.traceback
    assert "spider/tdl" not in error.traceback
    assert not modules_under("spider_tdl_packages.bad_init")


def test_the_init_failure_switch_of_the_integration_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPIDER_TEST_TDL_INIT_SHOULD_FAIL", "1")
    with pytest.raises(PackageInitError, match="integration_test_tasks: init failure requested"):
        load_package(PACKAGES_DIR, "integration_test_tasks")


def test_a_failing_import_fails_the_load_and_leaves_nothing_behind() -> None:
    before = set(sys.modules)
    with pytest.raises(PackageInitError) as caught:
        load_package(PACKAGES_DIR, "broken_import")
    assert str(caught.value) == (
        "failed to import TDL package 'broken_import': "
        "ImportError: broken_import: this package cannot be imported"
    )
    assert "<frozen importlib" not in caught.value.traceback
    assert "broken_import/__init__.py" in caught.value.traceback
    assert set(sys.modules) - before <= {"spider_tdl_packages"}


def test_definition_errors_in_a_package_fail_its_import(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "dupes",
        {
            "__init__.py": """
                from spider.tdl import task

                @task(name="same")
                def first() -> None: ...

                @task(name="same")
                def second() -> None: ...
            """,
        },
    )
    with pytest.raises(
        PackageInitError,
        match="TdlDefinitionError: duplicate task name 'same' in TDL package 'dupes'",
    ) as caught:
        load_package(tmp_path, "dupes")
    assert isinstance(caught.value.__cause__, TdlDefinitionError)


def test_each_load_imports_afresh_and_runs_the_hooks_again(tmp_path: Path) -> None:
    counter = tmp_path / "loads"
    write_package(
        tmp_path,
        "counted",
        {
            "__init__.py": f"""
                from pathlib import Path

                from spider.tdl import on_load

                @on_load
                def first() -> None:
                    with Path({str(counter)!r}).open("a") as log:
                        log.write("first ")

                @on_load
                def second() -> None:
                    with Path({str(counter)!r}).open("a") as log:
                        log.write("second ")
            """,
        },
    )
    load_package(tmp_path, "counted")
    load_package(tmp_path, "counted")
    assert counter.read_text() == "first second first second "


def test_a_package_without_tasks_says_so(tmp_path: Path) -> None:
    write_package(tmp_path, "hollow", {"__init__.py": ""})
    package = load_package(tmp_path, "hollow")
    assert package.tasks == {}
    with pytest.raises(
        TaskNotFound, match="task 'any' not found in TDL package 'hollow'; it registers no tasks"
    ):
        package.execute("any", CONTEXT, encode_frame([]))


def test_package_dir_may_be_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(
        tmp_path / "pkgs",
        "rel",
        {"__init__.py": "from spider.tdl import task\n\n@task\ndef two() -> int:\n    return 2\n"},
    )
    monkeypatch.chdir(tmp_path)
    package = load_package(Path("pkgs"), "rel")
    assert os.path.isabs(package.path)
    assert run(package, "two") == [2]


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
