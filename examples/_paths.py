"""Make ``examples/packages`` importable, so the example jobs can name their tasks.

A job names each task by its TDL package (the top-level module it was imported from) and
function; the executors load the same package from their package directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "packages"

if str(PACKAGE_DIR) not in sys.path:
    sys.path.insert(0, str(PACKAGE_DIR))
