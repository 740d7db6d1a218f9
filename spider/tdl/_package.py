"""Loading a TDL package from ``<package_dir>/<name>/__init__.py`` under a private module name.

``package_dir`` is one directory or several, searched in order, as ``PYTHONPATH`` is.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, TypeAlias

import attrs

from spider.tdl._errors import InvalidPackageName, PackageInitError, PackageNotFound, TaskNotFound
from spider.tdl._registry import PACKAGE_MODULE_PREFIX, close_registry, open_registry
from spider.tdl._task import TaskDefinition

MAX_PACKAGE_NAME_LENGTH: Final = 128

_PACKAGE_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")

StrPath: TypeAlias = str | os.PathLike[str]


@attrs.define(eq=False)
class TdlPackage:
    """A loaded package: its tasks by name, ready to execute."""

    name: str
    path: Path
    module_name: str
    tasks: Mapping[str, TaskDefinition]

    def execute(self, task_name: str, raw_ctx: bytes, raw_inputs: bytes) -> bytes:
        """Run task ``task_name`` on wire bytes; see ``TaskDefinition.execute``.

        Raises ``TaskNotFound`` if the package does not register ``task_name``.
        """
        definition = self.tasks.get(task_name)
        if definition is None:
            raise TaskNotFound(task_name, self.name, list(self.tasks))
        return definition.execute(raw_ctx, raw_inputs)


def validate_package_name(name: str) -> None:
    """Raise ``InvalidPackageName`` unless ``name`` is 1..128 ASCII letters, digits, ``_``, ``-``."""
    if not isinstance(name, str):
        raise InvalidPackageName(f"package name {name!r} is invalid: it must be a string")
    if not 1 <= len(name) <= MAX_PACKAGE_NAME_LENGTH:
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InvalidPackageName(
            f"package name {shown!r} is invalid: it has {len(name)} characters, "
            f"allowed are 1 to {MAX_PACKAGE_NAME_LENGTH}"
        )
    if not _PACKAGE_NAME.fullmatch(name) or not name.isascii():
        raise InvalidPackageName(
            f"package name {name!r} is invalid: only letters, digits, '_' and '-' are allowed"
        )


def load_package(package_dir: StrPath | Sequence[StrPath], name: str) -> TdlPackage:
    """Import package ``name`` from ``package_dir`` and run its ``@on_load`` hooks once.

    ``package_dir`` is one directory or several: the first one holding ``<name>/__init__.py``
    provides the package, and the path checks below apply within that directory.

    The package is imported as ``spider_tdl_packages.<name>`` (with a suffix if that is taken),
    so it neither shadows nor collides with any other module, including another package of the
    same name from another directory. Its submodules import each other with relative imports.

    Raises ``InvalidPackageName`` for a bad name or a path that leaves its directory (after
    resolving symlinks), ``PackageNotFound`` if no directory holds ``<name>/__init__.py`` (or
    one searched before it is not accessible), and ``PackageInitError`` if the import or a
    hook raises.
    """
    validate_package_name(name)
    directory, init_file = _find(_directories(package_dir), name)
    module_name = _free_module_name(name)
    spec = importlib.util.spec_from_file_location(
        module_name, init_file, submodule_search_locations=[str(directory)]
    )
    # A .py file always has a spec with a loader.
    assert spec is not None
    assert spec.loader is not None
    _ensure_parent_module()
    registry = open_registry(module_name, name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        _discard(module_name)
        raise PackageInitError(name, "import", exc) from exc
    try:
        for hook in list(registry.load_hooks):
            hook()
    except Exception as exc:
        _discard(module_name)
        raise PackageInitError(name, "initialize", exc) from exc
    return TdlPackage(name, directory, module_name, types.MappingProxyType(dict(registry.tasks)))


def package_names(package_dir: StrPath) -> list[str]:
    """The names of the packages one directory holds (``load_package`` would look there for
    them), sorted; raises ``PackageNotFound`` if the directory cannot be listed."""
    root = _resolve_package_dir(Path(package_dir))
    try:
        entries = sorted(entry.name for entry in os.scandir(root))
    except OSError as exc:
        raise PackageNotFound(
            f"package directory {str(package_dir)!r} cannot be listed: {exc}"
        ) from exc
    return [
        name
        for name in entries
        if len(name) <= MAX_PACKAGE_NAME_LENGTH and _PACKAGE_NAME.fullmatch(name)
        if _holds(root, name)
    ]


def _directories(package_dir: StrPath | Sequence[StrPath]) -> list[Path]:
    if isinstance(package_dir, str | os.PathLike):
        return [Path(package_dir)]
    return [Path(directory) for directory in package_dir]


def _find(package_dirs: list[Path], name: str) -> tuple[Path, Path]:
    for package_dir in package_dirs:
        root = _resolve_package_dir(package_dir)
        if _holds(root, name):
            # Found here: a refusal below is final, so no later directory stands in for a
            # package that is broken or points outside its own directory.
            return _locate(root, name)
    searched = [str(package_dir / name / "__init__.py") for package_dir in package_dirs]
    if len(searched) == 1:
        where = f"{searched[0]!r} does not exist"
    else:
        where = f"none of {', '.join(map(repr, searched))} exists (searched in that order)"
    raise PackageNotFound(
        f"TDL package {name!r} not found: {where}; a package is a directory "
        "<package_dir>/<name>/ holding an __init__.py"
    )


def _holds(root: Path, name: str) -> bool:
    """Whether ``root`` has an entry ``<name>/__init__.py``, usable or not."""
    try:
        os.lstat(root / name / "__init__.py")
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # there but unreadable: _locate says why
    return True


def _resolve_package_dir(package_dir: Path) -> Path:
    try:
        root = package_dir.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PackageNotFound(
            f"package directory {str(package_dir)!r} is not accessible: {exc}"
        ) from exc
    if not root.is_dir():
        raise PackageNotFound(f"package directory {str(package_dir)!r} is not a directory")
    return root


def _locate(root: Path, name: str) -> tuple[Path, Path]:
    init_file = root / name / "__init__.py"
    try:
        directory = (root / name).resolve(strict=True)
        resolved_init = init_file.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PackageNotFound(
            f"TDL package {name!r} not found: {str(init_file)!r} does not exist; a package is a "
            f"directory <package_dir>/<name>/ holding an __init__.py ({exc.__class__.__name__})"
        ) from exc
    for path in (directory, resolved_init):
        # A symlink may point anywhere: only code inside package_dir is what the operator vetted.
        if path == root or not path.is_relative_to(root):
            raise InvalidPackageName(
                f"package name {name!r} is invalid: it resolves to {str(path)!r}, outside the "
                f"package directory {str(root)!r}; packages must live inside package_dir"
            )
    if not resolved_init.is_file():
        raise PackageNotFound(f"TDL package {name!r} not found: {str(init_file)!r} is not a file")
    return directory, resolved_init


def _free_module_name(name: str) -> str:
    base = f"{PACKAGE_MODULE_PREFIX}.{name}"
    candidate, suffix = base, 1
    while candidate in sys.modules:
        suffix += 1
        candidate = f"{base}__{suffix}"
    return candidate


def _ensure_parent_module() -> None:
    if PACKAGE_MODULE_PREFIX not in sys.modules:
        parent = types.ModuleType(PACKAGE_MODULE_PREFIX, "TDL packages loaded by spider.tdl.")
        parent.__path__ = []  # a package with no directory: its children are set up by hand
        sys.modules[PACKAGE_MODULE_PREFIX] = parent


def _discard(module_name: str) -> None:
    close_registry(module_name)
    for loaded in [
        key for key in sys.modules if key == module_name or key.startswith(f"{module_name}.")
    ]:
        del sys.modules[loaded]
