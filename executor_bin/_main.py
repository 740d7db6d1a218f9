"""``spider-task-executor``: validate the environment, say Ready, serve."""

from __future__ import annotations

import logging
import os

from executor_bin._channel import FrameChannel
from executor_bin._lifeline import Lifeline
from executor_bin._runner import PackageCache, TaskRunner
from executor_bin._serve import serve
from executor_bin._settings import (
    DEFAULT_LOG_LEVEL,
    Settings,
    SettingsError,
    log_level_from_environment,
)
from executor_bin._stdio import claim_protocol_fds
from spider.core.logging import configure_logging
from spider.executor.exit_status import (
    EXIT_CONFIG_ERROR,
    EXIT_INTERNAL_ERROR,
    EXIT_PROTOCOL_ERROR,
)
from spider.executor.process_tree import kill_descendants
from spider.executor.protocol import (
    PROTOCOL_VERSION,
    Ready,
    encode_package_dir,
    encode_response,
)

_LOG = logging.getLogger("spider.executor")


def main() -> int:
    """Run the task executor on stdin/stdout; returns the process exit code.

    0 after ``Shutdown`` or end-of-file on stdin, 2 for an invalid environment, 3 for a
    protocol error or a failed pipe, 1 for an executor bug. However it ends, no process a task
    started outlives it (``docs/operations.md#orphaned-work``).
    """
    try:
        settings = Settings.from_environment(os.environ)
    except SettingsError as exc:
        configure_logging(level=_fallback_log_level())
        _LOG.critical("Invalid executor environment: %s", exc)
        return EXIT_CONFIG_ERROR
    configure_logging(level=settings.log_level)
    request_fd, reply_fd = claim_protocol_fds()
    lifeline = Lifeline.watch(request_fd)
    channel = FrameChannel(request_fd, reply_fd, settings.max_frame_bytes)
    runner = TaskRunner(PackageCache(settings.package_dir), settings.max_frame_bytes)
    pid = os.getpid()
    _LOG.info(
        "Executor starts.",
        extra={
            "pid": pid,
            "package_dir": encode_package_dir(settings.package_dir),
            "max_frame_bytes": settings.max_frame_bytes,
            "protocol_version": PROTOCOL_VERSION,
            "subreaper": lifeline.subreaper,
        },
    )
    try:
        channel.write_frame(encode_response(Ready(PROTOCOL_VERSION, pid, settings.max_frame_bytes)))
        code = serve(channel, runner, lifeline)
    except OSError as exc:
        _LOG.error("A protocol pipe failed; exiting.", extra={"error": str(exc)})
        code = EXIT_PROTOCOL_ERROR
    except Exception:
        _LOG.exception("Internal executor error; exiting.")
        code = EXIT_INTERNAL_ERROR
    finally:
        # Daemons a task left behind (a double fork and setsid included) are still below us.
        kill_descendants(pid)
    _LOG.info("Executor exits.", extra={"exit_code": code})
    return code


def _fallback_log_level() -> int:
    try:
        return log_level_from_environment(os.environ)
    except SettingsError:
        return DEFAULT_LOG_LEVEL
