"""Importing a TDL package of the tests' into the test process, under its own name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_as_top_level(parent: Path, name: str) -> ModuleType:
    """``parent/name`` imported as the top-level module ``name``, once per test session, so that
    its tasks can be called directly and their signatures give the graphs' types."""
    if name in sys.modules:
        return sys.modules[name]
    directory = parent / name
    spec = importlib.util.spec_from_file_location(
        name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
