"""``python -m spider.scheduler``: load the configuration, serve until SIGTERM or SIGINT.

Exit status: 0 after SIGTERM or SIGINT, 1 when the scheduler could not start or had to stop
(port taken, storage refused it), 2 for a configuration or usage error. Storage being down or
restarting is not a reason to stop: the scheduler waits for it and registers again.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import trio

from spider.core.config import ConfigError, unstructure_config
from spider.core.exception_groups import leaves_if_only
from spider.core.logging import LEVEL_ENV, configure_logging
from spider.core.service_cli import (
    STOP_SIGNALS,
    ServiceExit,
    add_logging_arguments,
    switch_interval,
    tune_thread_switching,
)
from spider.rpc import Endpoint, ListenError
from spider.rpc.auth import check_security
from spider.scheduler.config import SchedulerConfig, load_scheduler_config
from spider.scheduler.errors import SchedulerError
from spider.scheduler.runtime import run_scheduler

LOGGER: Final = logging.getLogger("spider.scheduler")


_EPILOG = f"""\
Configuration keys (all optional; defaults shown):
  host: 127.0.0.1                    port: 50052 (0 = any free port)
  connection_pool_size: 4            storage_endpoint: {{host: 127.0.0.1, port: 50051}}
  runtime:
    advertised_endpoint: {{host, port}}   default: host (loopback for 0.0.0.0) and bound port
    stop_timeout_sec: 30
    em_registry: {{dead_em_cutoff_sec: 30, liveness_tracking_interval_ms: 1000}}
    scheduler:
      policy: round_robin
      config: {{active_job_queue_capacity: 16, dispatch_queue_capacity: 16,
               ready_task_capacity: 1048576, commit_ready_task_capacity: 256,
               cleanup_ready_task_capacity: 256, storage_poll_timeout_ms: 1000,
               tick_interval_ms: 5, finalizing_job_expiration_timeout_sec: 300,
               storage_poll_page_size: 512}}
    storage_call_deadline_sec: 10
    storage_reconnect: {{initial_sec: 0.1, cap_sec: 5, jitter_sec: 0.1}}
Unknown keys are an error. Precedence: command-line flags, then the file, then the defaults.
Environment: {LEVEL_ENV} (log level, default INFO).

Exit status: 0 after SIGTERM or SIGINT; 1 when the scheduler could not start or go on (port in
use, storage refused the registration); 2 for a configuration or usage error. See
docs/scheduler.md."""


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m spider.scheduler",
        description="Spider-py scheduler: polls storage's ready work, orders it round robin "
        "over jobs and hands it to execution managers over Spider's scheduler gRPC API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, help="YAML configuration file")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 50052; 0 = any)")
    parser.add_argument(
        "--storage", metavar="HOST:PORT", help="storage endpoint (default 127.0.0.1:50051)"
    )
    add_logging_arguments(parser)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as YAML and exit",
    )
    return parser


def resolve_config(args: argparse.Namespace) -> SchedulerConfig:
    """The configuration the file and flags give; ``ConfigError`` naming what is wrong."""
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.storage is not None:
        try:
            endpoint = Endpoint.parse(args.storage)
        except ValueError as exc:
            raise ConfigError(f"--storage: {exc}") from exc
        overrides["storage_endpoint"] = {"host": endpoint.host, "port": endpoint.port}
    config = load_scheduler_config(args.config, overrides)
    check_security(config.security, serves=True)
    return config


async def _serve(config: SchedulerConfig) -> None:
    # Receive the stop signals from the start, so that none hits the default disposition.
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_scheduler, config)
            async for signum in signals:
                LOGGER.info("received %s; stopping", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel(reason="stop signal")
    LOGGER.info("scheduler stopped")


_FATAL: Final = (SchedulerError, ListenError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scheduler; return the process's exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
        interval = switch_interval(os.environ)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return ServiceExit.USAGE
    if args.print_config:
        import yaml  # only needed here

        print(yaml.safe_dump(unstructure_config(config), sort_keys=False), end="")
        return ServiceExit.STOPPED
    configure_logging(level=args.log_level, human=args.human_logs)
    tune_thread_switching(interval)
    try:
        trio.run(_serve, config)
    except Exception as error:
        fatal = leaves_if_only(error, _FATAL)
        if fatal is None:
            raise
        for leaf in fatal:
            LOGGER.critical("scheduler cannot run: %s", leaf)
        return ServiceExit.FAILED
    return ServiceExit.STOPPED
