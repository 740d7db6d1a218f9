"""Reading a job description for ``spider submit``: a Python file or a JSON file."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from spider.client import JobBuilder, JobDefinitionError, JobDescription, job_from_json

DEFAULT_FUNCTION: Final = "job"


class JobFileError(JobDefinitionError):
    """The job file cannot be read, imported or called."""


def load_job(source: str, search_path: Sequence[Path] = ()) -> JobDescription:
    """The job ``source`` describes: ``FILE.json``, ``FILE.py`` or ``FILE.py:FUNCTION``.

    A Python file is imported as a module named after its stem, with its directory and
    ``search_path`` on ``sys.path`` (so it can import TDL packages that live beside it), and
    ``FUNCTION`` (default ``job``) is called with no arguments; it returns a ``JobBuilder``, a
    ``JobDescription`` or a JSON description as a dict.
    """
    file_part, _, function = source.partition(":")
    if file_part.endswith(".py") or function:
        return _from_python(Path(file_part), function or DEFAULT_FUNCTION, search_path)
    path = Path(file_part)
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise JobFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise JobFileError(f"{path} is not valid JSON: {exc}") from None
    return job_from_json(document)


def _from_python(path: Path, function: str, search_path: Sequence[Path]) -> JobDescription:
    if not path.is_file():
        raise JobFileError(f"no such file: {path}")
    for directory in [path.resolve().parent, *search_path]:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise JobFileError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise JobFileError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, function, None)
    if not callable(factory):
        raise JobFileError(
            f"{path} has no function {function!r}; define `def {function}() -> JobBuilder` "
            f"or name another one as {path}:FUNCTION"
        )
    try:
        result = factory()
    except JobDefinitionError:
        raise
    except Exception as exc:
        raise JobFileError(f"{path}:{function}() failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, JobBuilder):
        return result.build()
    if isinstance(result, JobDescription):
        return result
    if isinstance(result, dict):
        return job_from_json(result)
    raise JobFileError(
        f"{path}:{function}() returned {type(result).__name__}; return a JobBuilder, a "
        "JobDescription or a JSON job description (dict)"
    )
