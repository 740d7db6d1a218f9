"""One concept, one name: no class name is defined twice under ``spider/``.

Two classes with one name in two layers (the scheduler's ``Assignment`` and the EM's) make a
reader guess which one a traceback, a log line or an import means; docs/architecture.md, "A
task's path, and what it is called at each step", lists each concept's one name and what each
layer adds. ``spider/proto`` is generated from the
``.proto`` files and is not held to this. That the EM imports neither storage nor the scheduler
is checked by tests/unit/em/test_em_layering.py.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import spider

SPIDER_DIR = Path(spider.__file__).parent
GENERATED = SPIDER_DIR / "proto"


def _defined_classes(path: Path) -> list[str]:
    """Every class statement in the module, at any depth (nested and local ones included)."""
    tree = ast.parse(path.read_text(), str(path))
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def duplicate_class_names(root: Path) -> dict[str, list[str]]:
    """Class names defined more than once under ``root`` (``proto/`` excluded), with where."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    generated = root / GENERATED.name
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(generated):
            continue
        for name in _defined_classes(path):
            where[name].append(path.relative_to(root.parent).as_posix())
    return {name: paths for name, paths in sorted(where.items()) if len(paths) > 1}


def test_no_class_name_is_defined_twice() -> None:
    assert len(list(SPIDER_DIR.rglob("*.py"))) > 100, "the scan must see the spider package"
    duplicates = duplicate_class_names(SPIDER_DIR)
    report = "\n".join(f"{name}: {', '.join(paths)}" for name, paths in duplicates.items())
    assert duplicates == {}, f"class names defined twice (rename one for what it adds):\n{report}"


def test_the_scan_finds_a_duplicate_and_skips_generated_code(tmp_path: Path) -> None:
    root = tmp_path / "spider"
    (root / "em").mkdir(parents=True)
    (root / "storage").mkdir()
    (root / "proto").mkdir()
    (root / "em" / "errors.py").write_text("class StaleSession(Exception):\n    pass\n")
    (root / "storage" / "errors.py").write_text(
        "def later() -> None:\n    class StaleSession:\n        pass\n"
    )
    (root / "proto" / "messages.py").write_text("class Outcome:\n    pass\n")
    (root / "storage" / "outcome.py").write_text("class Outcome:\n    pass\n")
    assert duplicate_class_names(root) == {
        "StaleSession": ["spider/em/errors.py", "spider/storage/errors.py"]
    }
