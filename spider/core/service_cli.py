"""What the command lines of the three services share: stop signals, exit statuses, log flags,
and the interpreter setting a service process runs with."""

from __future__ import annotations

import argparse
import enum
import math
import signal
import sys
from collections.abc import Mapping
from typing import Final

from spider.core.config import ConfigError
from spider.core.logging import LEVEL_ENV

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
"""The signals that ask a service to stop gracefully."""


SERVICE_SWITCH_INTERVAL: Final = 0.0005
"""Seconds a thread may hold the GIL while another waits for it, in a service process (the
interpreter's default is 0.005).

A service runs two busy threads: Trio's, and the worker running a database transaction. Each returns from blocking calls (a socket, every SQLite statement and
COMMIT) needing the GIL back, and at the default it waits up to 5 ms behind whichever thread runs
Python code. ``benchmarks/switch_interval.py`` measures it: a one-row SQLite commit beside a busy
thread takes 6 ms at the default and 1.5 ms at 0.5 ms (docs/benchmarks.md, "The thread switch
interval", has the figures)."""


SWITCH_INTERVAL_ENV: Final = "SPIDER_SWITCH_INTERVAL_MS"
"""Overrides ``SERVICE_SWITCH_INTERVAL``, in milliseconds (5 is the interpreter's default)."""


def switch_interval(environ: Mapping[str, str]) -> float:
    """The switch interval a service runs with: ``$SPIDER_SWITCH_INTERVAL_MS`` if set, else
    ``SERVICE_SWITCH_INTERVAL``. Raises ``ConfigError`` for an override that is not a positive
    number of milliseconds."""
    override = environ.get(SWITCH_INTERVAL_ENV)
    if override is None:
        return SERVICE_SWITCH_INTERVAL
    try:
        interval = float(override) / 1000
    except ValueError:
        interval = math.nan
    if not (interval > 0 and math.isfinite(interval)):
        raise ConfigError(
            f"{SWITCH_INTERVAL_ENV} must be a positive number of milliseconds, got {override!r}"
        )
    return interval


def tune_thread_switching(interval: float) -> None:
    """Set the interpreter's switch interval (``switch_interval``'s answer): for a service's own
    process, before ``trio.run``.

    A process-wide setting, so the services' entry points call it and library code (the
    client, the embedded cluster inside someone else's program) does not.
    """
    sys.setswitchinterval(interval)


class ServiceExit(enum.IntEnum):
    """A service's exit status (the execution manager adds one for a forced stop)."""

    STOPPED = 0
    """Stopped by SIGTERM or SIGINT."""
    FAILED = 1
    """Could not start, or could not go on (see the last log line)."""
    USAGE = 2
    """Bad command line or configuration."""


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """``--human-logs`` and ``--log-level``, as ``configure_logging`` takes them."""
    parser.add_argument("--human-logs", action="store_true", help="human-readable logs")
    parser.add_argument(
        "--log-level", help=f"DEBUG, INFO, WARNING... (default ${LEVEL_ENV} or INFO)"
    )
