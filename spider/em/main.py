"""The execution manager's command line: load the configuration, handle signals, run the EM.

Without endpoints the EM runs inside the embedded cluster, which this package does not know:
``python -m spider.em`` (``spider.cluster.main``) passes it in as ``main``'s ``embedded``, so
that ``spider.em`` depends on neither storage nor the scheduler (docs/execution-manager.md, "The
embedded single-node cluster").

Exit status: 0 after a stop requested by SIGTERM or SIGINT, 1 when the EM had to stop on its
own (storage does not know its id, executors cannot start...), 2 for a configuration or usage
error, 3 when a second signal forced the exit.
"""

from __future__ import annotations

import argparse
import enum
import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeAlias

import attrs
import trio

from spider.core.config import ConfigError, unstructure_config
from spider.core.logging import LEVEL_ENV, configure_logging
from spider.core.service_cli import (
    STOP_SIGNALS,
    add_logging_arguments,
    switch_interval,
    tune_thread_switching,
)
from spider.em.address import advertised_address
from spider.em.clients import open_grpc_clients
from spider.em.config import (
    ENV_OVERRIDES,
    ExecutionManagerConfig,
    LogFormat,
    endpoint_data,
    load_em_config,
)
from spider.em.errors import ExecutionManagerError
from spider.em.package_dir import check_package_dir
from spider.em.pool import open_process_pool
from spider.em.runtime import run_execution_manager
from spider.em.stop import EmStop
from spider.observability import serve_http
from spider.rpc import Endpoint, EndpointConfig
from spider.rpc.auth import check_security, cluster_metadata

LOGGER: Final = logging.getLogger("spider.em")


class EmExit(enum.IntEnum):
    """The EM process's exit status: ``ServiceExit``'s three, plus a forced stop."""

    STOPPED = 0
    """A requested stop completed."""
    FAILED = 1
    """The EM stopped on its own because it could not go on."""
    USAGE = 2
    """Bad command line or configuration."""
    FORCED = 3
    """A second stop signal forced the exit; reports or acknowledgements may be lost."""


EmbeddedRunner: TypeAlias = Callable[[ExecutionManagerConfig, EmStop], Awaitable[None]]
"""Runs the EM inside a single-node cluster of its own,
until the stop's stop completes; raises ``ExecutionManagerError`` as the EM does."""

_ENV_HELP = "\n".join(f"  {name:<30} {key}" for name, key in ENV_OVERRIDES.items())

_EPILOG = f"""\
Precedence: command-line flags, then SPIDER_EM_* environment variables, then the file, then the
defaults. Environment variables:
{_ENV_HELP}
  {LEVEL_ENV:<30} log level (default INFO)
SPIDER_EM_PACKAGE_DIR takes several directories separated by {os.pathsep!r}, as PYTHONPATH does.

Signals: the first SIGTERM or SIGINT stops polling at once; a running task gets until its hard
timeout or shutdown_grace_sec, whichever is first, then is killed and reported as failed;
reports drain (shutdown_drain_sec); every consumed assignment is acknowledged in Shutdown; the
exit status is 0. A second signal kills running tasks at once and exits within about
forced_shutdown_sec of it (the report drain and Shutdown share that bound), with status 3. Status 1: the EM could not go on (see the last log line);
status 2: a configuration or usage error. Declared dead by storage (paused past its cutoff), the
EM registers again under a new id and keeps its executors (on_declared_dead: rejoin), or exits
1 with on_declared_dead: exit.

See docs/execution-manager.md for every configuration key."""


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m spider.em",
        description="Spider-py execution manager: pulls task assignments from the scheduler, "
        "runs them in task executor subprocesses and reports their outcomes to storage. "
        "Without --storage and --scheduler it runs the embedded single-node cluster: storage "
        "(SQLite in --data-dir), the scheduler and this EM in one process.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, help="YAML configuration file")
    parser.add_argument("--storage", metavar="HOST:PORT", help="storage endpoint")
    parser.add_argument("--scheduler", metavar="HOST:PORT", help="scheduler endpoint")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="embedded cluster: directory of storage's SQLite database (default ./spider-data)",
    )
    parser.add_argument(
        "--host",
        help="embedded cluster: where storage and the scheduler listen (default 127.0.0.1; "
        "the metrics stay on loopback unless metrics.host says otherwise)",
    )
    parser.add_argument(
        "--storage-port", type=int, metavar="PORT", help="embedded cluster: storage's port"
    )
    parser.add_argument(
        "--scheduler-port", type=int, metavar="PORT", help="embedded cluster: the scheduler's port"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on this port (0: a free one)",
    )
    parser.add_argument(
        "--advertised-host",
        metavar="ADDRESS",
        help="the address registered with storage (default: the one storage is reached from)",
    )
    parser.add_argument(
        "--package-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="directory of TDL packages; repeat it for several, searched in order "
        "(task_executor.package_dir; replaces the file's list)",
    )
    parser.add_argument(
        "--executors", type=int, metavar="N", help="tasks run at the same time (default 1)"
    )
    parser.add_argument(
        "--shutdown-grace", type=float, metavar="SEC", help="shutdown_grace_sec (default 30)"
    )
    add_logging_arguments(parser)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as YAML and exit",
    )
    return parser


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.storage is not None:
        overrides["storage"] = endpoint_data(args.storage, source="--storage")
    if args.scheduler is not None:
        overrides["scheduler"] = endpoint_data(args.scheduler, source="--scheduler")
    if args.data_dir is not None:
        overrides["embedded.data_dir"] = str(args.data_dir)
    for flag, key in (
        ("host", "embedded.host"),
        ("storage_port", "embedded.storage_port"),
        ("scheduler_port", "embedded.scheduler_port"),
        ("metrics_port", "metrics.port"),
        ("advertised_host", "advertised_host"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.package_dir is not None:
        overrides["task_executor.package_dir"] = [str(directory) for directory in args.package_dir]
    if args.executors is not None:
        overrides["executors"] = args.executors
    if args.shutdown_grace is not None:
        overrides["shutdown_grace_sec"] = args.shutdown_grace
    return overrides


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    embedded: EmbeddedRunner | None = None,
) -> int:
    """Run the execution manager; return the process's exit status.

    ``embedded`` runs the EM when the configuration names no endpoints; without it, only the
    connected mode is available and a configuration without endpoints is a usage error.
    """
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        config = load_em_config(args.config, environ=env, overrides=_flag_overrides(args))
        check_security(config.security, serves=config.storage is None)
        interval = switch_interval(env)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EmExit.USAGE
    if args.print_config:
        import yaml  # only needed here

        print(yaml.safe_dump(unstructure_config(config), sort_keys=False), end="")
        return EmExit.STOPPED
    configure_logging(
        level=args.log_level, human=args.human_logs or config.log_format is LogFormat.HUMAN
    )
    if (config.storage is None) != (config.scheduler is None):
        print(
            "error: give both the storage and the scheduler endpoints (storage: and scheduler: "
            "in the file, --storage/--scheduler, or SPIDER_EM_STORAGE/SPIDER_EM_SCHEDULER), or "
            "neither to run the embedded single-node cluster",
            file=sys.stderr,
        )
        return EmExit.USAGE
    try:
        # Resolved once, here: a name that does not resolve is a usage error, not a crash.
        storage = config.storage.endpoint() if config.storage is not None else None
        local = Endpoint(config.embedded.host, config.embedded.storage_port)
        address = advertised_address(config.advertised_host, storage or local)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EmExit.USAGE
    config = attrs.evolve(config, advertised_host=address)
    if config.storage is None and embedded is None:
        print(
            "error: give the storage and the scheduler endpoints; this entry point runs only a "
            "connected execution manager (python -m spider.em runs the embedded cluster)",
            file=sys.stderr,
        )
        return EmExit.USAGE
    try:
        # Before anything starts: a bad directory is a configuration error, not a task failure.
        check_package_dir(config.task_executor.package_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EmExit.USAGE
    tune_thread_switching(interval)
    return trio.run(_serve, config, embedded)


async def _serve(config: ExecutionManagerConfig, embedded: EmbeddedRunner | None) -> EmExit:
    stop = EmStop(grace=config.shutdown_grace_sec, forced_bound=config.forced_shutdown_sec)
    # Installed before anything else, so that no stop signal can hit the default disposition.
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay_signals, signals, stop)
            status = await _run(config, embedded, stop)
            nursery.cancel_scope.cancel(reason="the execution manager has stopped")
    return status


async def _run(
    config: ExecutionManagerConfig, embedded: EmbeddedRunner | None, stop: EmStop
) -> EmExit:
    try:
        if config.storage is not None and config.scheduler is not None:
            await _run_connected(config, config.storage, config.scheduler, stop)
        else:
            assert embedded is not None, "main() refuses a configuration without endpoints"
            await embedded(config, stop)
    except ExecutionManagerError as error:
        LOGGER.critical(
            "Execution manager stopped on an error: %s", error, exc_info=error.__cause__ is not None
        )
        return EmExit.FAILED
    if stop.forced:
        LOGGER.warning("Execution manager exited early: the stop was forced.")
        return EmExit.FORCED
    LOGGER.info("Execution manager runtime exited.")
    return EmExit.STOPPED


async def _run_connected(
    config: ExecutionManagerConfig,
    storage: EndpointConfig,
    scheduler: EndpointConfig,
    stop: EmStop,
) -> None:
    LOGGER.info(
        "Execution manager starting.",
        extra={
            "storage": str(storage.endpoint()),
            "scheduler": str(scheduler.endpoint()),
            "executors": config.executors,
        },
    )
    failure: ExecutionManagerError | None = None
    async with (
        open_grpc_clients(
            storage.endpoint(),
            scheduler.endpoint(),
            connection_pool_size=config.connection_pool_size,
            deadlines=config.client_deadlines(),
            tls=config.security.tls,
            metadata=cluster_metadata(config.security),
        ) as clients,
        trio.open_nursery() as nursery,
    ):
        metrics = config.metrics_config(embedded=False)
        if metrics.enabled:
            await nursery.start(serve_http, metrics, "execution manager")
        try:
            await run_execution_manager(
                config.runtime_settings(),
                clients,
                functools.partial(open_process_pool, config.pool_config()),
                stop,
            )
        except ExecutionManagerError as error:
            # Raised bare after the metrics server stops, not in the nursery's exception group.
            failure = error
        nursery.cancel_scope.cancel(reason="the execution manager has stopped")
    if failure is not None:
        raise failure


async def _relay_signals(signals: AsyncIterator[int], stop: EmStop) -> NoReturn:
    """Turn each stop signal into a stop request (the second one forces the stop)."""
    async for signum in signals:
        stop.request(f"received {signal.Signals(signum).name}")
    raise AssertionError("the signal receiver never ends")  # pragma: no cover
