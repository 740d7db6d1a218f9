"""The committed code under spider/proto must be what `nox -s proto` generates from `protos/`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("_gen_protos", ROOT / "tools" / "gen_protos.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_code_matches_protos(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.generate(tmp_path)  # type: ignore[attr-defined]
    fresh = generator.generated_files(tmp_path)  # type: ignore[attr-defined]
    committed = generator.generated_files(generator.PACKAGE_DIR)  # type: ignore[attr-defined]
    assert sorted(fresh) == sorted(committed), "generated modules differ: run `nox -s proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"spider/proto is stale ({', '.join(stale)}): run `nox -s proto` and commit"
