"""Regenerate the betterproto (grpclib) code under ``spider/proto`` from ``protos/``.

Used by ``nox -s proto`` and by the test that fails when the committed code is stale.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_FILES = (
    "common/common.proto",
    "scheduler/scheduler.proto",
    "storage/storage.proto",
    # Spider-py's extension, in its own package: Spider's three files stay upstream's.
    "spider_py/status.proto",
    "spider_py/execution.proto",
)
PACKAGE_DIR = ROOT / "spider" / "proto"
HEADER = (
    '"""Generated betterproto code for Spider\'s protocol. Run `nox -s proto` to regenerate."""\n'
)


def generate(out_dir: Path) -> None:
    """Write the generated package for every proto file into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The betterproto plugin is a console script living beside this interpreter.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_betterproto_out={out_dir}",
            *PROTO_FILES,
        ],
        cwd=PROTO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    (out_dir / "__init__.py").write_text(HEADER)


def generated_files(directory: Path) -> dict[str, str]:
    """Map each generated file's relative path to its text."""
    return {
        str(path.relative_to(directory)): path.read_text()
        for path in sorted(directory.rglob("*.py"))
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        shutil.rmtree(PACKAGE_DIR, ignore_errors=True)
        shutil.copytree(tmp, PACKAGE_DIR)
    print(f"regenerated {PACKAGE_DIR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
