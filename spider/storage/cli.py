"""``python -m spider.storage``: load the configuration, open the database, serve until a signal.

The service itself, and the order of its startup, is ``spider.storage.server``. Exit status: 0
after SIGTERM or SIGINT, 1 when the service could not start or had to stop (database
unreachable, port taken), 2 for a configuration or usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import trio

from spider.core.config import ConfigError, merge_overrides, read_config_file, structure_config
from spider.core.exception_groups import leaves_if_only
from spider.core.logging import LEVEL_ENV, configure_logging
from spider.core.service_cli import (
    STOP_SIGNALS,
    ServiceExit,
    add_logging_arguments,
    switch_interval,
    tune_thread_switching,
)
from spider.rpc import ListenError
from spider.rpc.auth import check_security
from spider.storage.config import StorageConfig
from spider.storage.db import DatabaseError, SqliteConfig
from spider.storage.errors import StorageError
from spider.storage.server import SQLITE_FILE_NAME, StorageLaunch, serve_storage

LOGGER: Final = logging.getLogger("spider.storage")

DEFAULT_HOST: Final = "127.0.0.1"
"""Spider's default is 0.0.0.0; Spider-py listens on loopback unless told otherwise, because the
storage service has no authentication of its own."""
DEFAULT_DATA_DIR: Final = Path("spider-data")


_EPILOG = f"""\
Without runtime.db in the file, the database is SQLite at DATA_DIR/{SQLITE_FILE_NAME}.
Precedence: command-line flags, then the file, then the defaults (host {DEFAULT_HOST}, port
50051). Environment: SPIDER_STORAGE_DB_USERNAME / SPIDER_STORAGE_DB_PASSWORD (MariaDB
credentials when the file has none), {LEVEL_ENV} (log level, default INFO).

Exit status: 0 after SIGTERM or SIGINT; 1 when storage could not start or go on (database
unreachable, port in use); 2 for a configuration or usage error. See docs/storage.md."""


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m spider.storage",
        description="Spider-py storage service: jobs, task instances, sessions and execution "
        "manager liveness, served over Spider's storage gRPC API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, help="YAML configuration file")
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help="port to listen on (default 50051; 0 = any)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help=f"directory of the SQLite database when runtime.db is not set "
        f"(default ./{DEFAULT_DATA_DIR})",
    )
    add_logging_arguments(parser)
    return parser


def resolve_launch(args: argparse.Namespace) -> StorageLaunch:
    """The configuration the command line and file give; ``ConfigError`` naming what is wrong."""
    file_data = read_config_file(args.config) if args.config is not None else {}
    data = merge_overrides({"host": DEFAULT_HOST}, file_data)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    source = f"configuration file {args.config}" if args.config else "configuration"
    config = structure_config(merge_overrides(data, overrides), StorageConfig, source=source)
    check_security(config.security, serves=True)
    database = config.runtime.db
    if database is None:
        data_dir = args.data_dir if args.data_dir is not None else DEFAULT_DATA_DIR
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the data directory {data_dir}: {exc}") from exc
        database = SqliteConfig(data_dir / SQLITE_FILE_NAME)
    return StorageLaunch(config, database)


async def run_storage(
    launch: StorageLaunch,
    environ: Mapping[str, str] = os.environ,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the storage service until SIGTERM or SIGINT; ``task_status`` gets the bound port."""
    # Receive the stop signals from the start: one that arrives during recovery is kept, and
    # stops the service as soon as startup completes instead of killing it half-way.
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(serve_storage, launch, environ)
            task_status.started(port)
            async for signum in signals:
                LOGGER.info("received %s; stopping", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel(reason="stop signal")
    LOGGER.info("storage stopped")


_FATAL = (StorageError, DatabaseError, ListenError, ConfigError, OSError)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the storage service; return the process's exit status."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        launch = resolve_launch(args)
        interval = switch_interval(env)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return ServiceExit.USAGE
    configure_logging(level=args.log_level, human=args.human_logs)
    tune_thread_switching(interval)
    try:
        trio.run(run_storage, launch, env)
    except Exception as error:
        fatal = leaves_if_only(error, _FATAL)
        if fatal is None:
            raise
        for leaf in fatal:
            LOGGER.critical("storage cannot run: %s", leaf)
        if any(isinstance(leaf, ConfigError) for leaf in fatal):
            return ServiceExit.USAGE
        return ServiceExit.FAILED
    return ServiceExit.STOPPED
