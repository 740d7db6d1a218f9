"""Logging setup shared by every Spider-py process: JSON lines on stderr, or human-readable.

Code logs through stdlib ``logging`` with structured fields in ``extra=`` (``job_id``,
``task_id``, ``executor_id``...); this module only renders them. One object per line:
``{"timestamp": "...Z", "level": "INFO", "logger": "spider.em", "message": "...", <fields>}``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any, TextIO

LEVEL_ENV = "SPIDER_LOG_LEVEL"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    set(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {"message", "asctime"}
)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with ``extra=``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class JsonLineFormatter(logging.Formatter):
    """Renders a record as one JSON object, fields included, exceptions as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="microseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``12:00:00.123 INFO  spider.em: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{key}={value}" for key, value in record_fields(record).items())
        line = f"{when} {record.levelname:<5} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(
    *, level: str | int | None = None, human: bool = False, stream: TextIO | None = None
) -> None:
    """Send the root logger's output to ``stream`` (stderr) in one format.

    ``level`` defaults to the ``SPIDER_LOG_LEVEL`` environment variable, else INFO.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(HumanFormatter() if human else JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    resolved = level if level is not None else os.environ.get(LEVEL_ENV, "INFO")
    root.setLevel(resolved.upper() if isinstance(resolved, str) else resolved)
