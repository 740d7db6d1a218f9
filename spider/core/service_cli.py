"""What the command lines of the three services share: stop signals, exit statuses, log flags."""

from __future__ import annotations

import argparse
import enum
import signal
from typing import Final

from spider.core.logging import LEVEL_ENV

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
"""The signals that ask a service to stop gracefully."""


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
