"""The EM package depends on neither storage nor the scheduler.

The embedded cluster, which runs all three in one process, lives above them in
``spider.cluster``. Only ``spider/em/__main__.py``, the process entry of ``python -m spider.em``,
reaches up to it (docs/execution-manager.md, "The embedded single-node cluster").
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import spider.em

EM_DIR = Path(spider.em.__file__).parent
FORBIDDEN = ("spider.storage", "spider.scheduler", "spider.cluster")
PROCESS_ENTRY = EM_DIR / "__main__.py"


def _em_modules() -> list[Path]:
    return sorted(path for path in EM_DIR.rglob("*.py") if path != PROCESS_ENTRY)


def _module_name(path: Path) -> str:
    parts = path.relative_to(EM_DIR.parent.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, at any depth (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            # The package imports absolutely; a relative import would hide from this scan.
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            base = node.module or ""
            yield node.lineno, base
            # ``from spider import storage`` names the package through the alias.
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _is_forbidden(name: str) -> bool:
    return any(name == layer or name.startswith(f"{layer}.") for layer in FORBIDDEN)


def test_no_em_module_imports_storage_scheduler_or_the_cluster() -> None:
    modules = _em_modules()
    assert len(modules) > 20, "the scan must see the EM package"
    offending = [
        f"{path.relative_to(EM_DIR.parent.parent)}:{line}: imports {name}"
        for path in modules
        for line, name in _imported_names(path)
        if _is_forbidden(name)
    ]
    assert offending == []


def test_the_scan_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "def later() -> None:\n    from spider import scheduler\n    import spider.storage.db\n"
    )
    names = [name for _, name in _imported_names(module) if _is_forbidden(name)]
    assert names == ["spider.scheduler", "spider.storage.db"]


def test_importing_every_em_module_loads_neither_service() -> None:
    # In a fresh interpreter: catches dependencies that come in through another package.
    names = [_module_name(path) for path in _em_modules()]
    probe = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith("
        f"{FORBIDDEN!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == []


def test_the_process_entry_runs_the_embedded_cluster() -> None:
    # The one exception, and the reason for it: ``python -m spider.em`` without endpoints.
    names = [name for _, name in _imported_names(PROCESS_ENTRY)]
    assert "spider.cluster.main" in names
