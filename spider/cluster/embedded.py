"""The embedded single-node cluster: storage, the scheduler and one EM in one Trio process.

``python -m spider.em`` without ``storage`` and ``scheduler`` endpoints runs this
(``spider.cluster.main``). It is the distributed system on one node, not a separate code path:
the same services and the same EM runtime, wired together in one process:

* storage on SQLite in ``embedded.data_dir`` (the database survives restarts);
* the scheduler, registered with that storage;
* the execution manager, connected to both.

Inside the process the parts call each other's gRPC handlers directly (``LocalChannel``: the
same handlers, status errors and deadlines, without encoding and HTTP/2); clients and other
processes reach storage and the scheduler over real gRPC on loopback.

Shutdown runs in the reverse order: the EM stops first (its running task, reports and
``Shutdown`` go to services that are still up), then the scheduler and storage are cancelled.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import attrs
import trio

from spider.client import ClientConfig
from spider.dashboard import run_dashboard_of
from spider.em.clients import local_clients
from spider.em.config import ExecutionManagerConfig
from spider.em.errors import ExecutionManagerError
from spider.em.pool import open_process_pool
from spider.em.runtime import run_execution_manager
from spider.em.stop import EmStop
from spider.observability import Route, serve_http
from spider.rpc import Endpoint, EndpointConfig, ListenError, LocalChannel, RpcConfig, ServiceBase
from spider.scheduler import SchedulerConfig, run_scheduler
from spider.storage.config import StorageConfig
from spider.storage.db import SqliteConfig
from spider.storage.server import SQLITE_FILE_NAME, StorageLaunch, serve_storage

# The cluster runs as ``python -m spider.em``: its lines are that process's, under its logger.
LOGGER: Final = logging.getLogger("spider.em")


@attrs.frozen
class EmbeddedEndpoints:
    """Where the embedded cluster's services listen."""

    storage: Endpoint
    scheduler: Endpoint
    metrics: Endpoint | None = None
    """Where ``/metrics``, ``/healthz`` and ``/readyz`` are served, if they are."""
    dashboard: Endpoint | None = None
    """Where the web dashboard is served (at ``/``), if it is."""


async def run_embedded_cluster(
    config: ExecutionManagerConfig,
    stop: EmStop,
    *,
    task_status: trio.TaskStatus[EmbeddedEndpoints] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run storage, the scheduler and the EM until ``stop`` asks the EM to stop.

    ``task_status`` gets the endpoints once all three serve. Raises
    what the EM raises (``ExecutionManagerError``) or what stops a service from starting.
    """
    embedded = config.embedded
    embedded.data_dir.mkdir(parents=True, exist_ok=True)
    launch = StorageLaunch(
        StorageConfig(host=embedded.host, port=embedded.storage_port, security=config.security),
        SqliteConfig(embedded.data_dir / SQLITE_FILE_NAME),
    )
    failure: ExecutionManagerError | None = None
    deadlines = config.client_deadlines()
    async with trio.open_nursery() as services:
        storage_services: list[ServiceBase] = []
        storage_port: int = await services.start(
            functools.partial(serve_storage, launch, local_services=storage_services)
        )
        # Within this process the parts call each other's handlers directly: the same
        # handlers, errors and deadlines as over gRPC, without encoding, HTTP/2 and thread hops.
        # Clients and other processes still reach both services over gRPC on loopback.
        to_storage = LocalChannel(storage_services, deadlines.call)
        storage = Endpoint(embedded.host, storage_port)
        scheduler_config = SchedulerConfig(
            host=embedded.host,
            port=embedded.scheduler_port,
            storage_endpoint=EndpointConfig(storage.host, storage.port),
            security=config.security,
        )
        scheduler_services: list[ServiceBase] = []
        scheduler_port: int = await services.start(
            functools.partial(
                run_scheduler,
                scheduler_config,
                storage_channel=to_storage,
                local_services=scheduler_services,
            )
        )
        metrics = await _serve_metrics(services, config, storage)
        dashboard = metrics if metrics is not None and embedded.dashboard else None
        endpoints = EmbeddedEndpoints(
            storage, Endpoint(embedded.host, scheduler_port), metrics, dashboard
        )
        LOGGER.info(
            "Embedded cluster serving: storage at %s, scheduler at %s, metrics at %s, "
            "dashboard at %s, data in %s.",
            endpoints.storage,
            endpoints.scheduler,
            "(off)" if metrics is None else f"http://{metrics}/metrics",
            "(off)" if dashboard is None else f"http://{dashboard}/",
            embedded.data_dir,
            extra={
                "storage": str(endpoints.storage),
                "scheduler": str(endpoints.scheduler),
                "metrics": None if metrics is None else str(metrics),
                "dashboard": None if dashboard is None else str(dashboard),
                "data_dir": str(embedded.data_dir),
            },
        )
        task_status.started(endpoints)
        to_scheduler = LocalChannel(scheduler_services, deadlines.call)
        try:
            await run_execution_manager(
                config.runtime_settings(),
                local_clients(to_storage, to_scheduler, deadlines),
                functools.partial(open_process_pool, config.pool_config()),
                stop,
            )
        except ExecutionManagerError as error:
            # Raised bare after the services stop, as the EM alone raises it, rather than
            # wrapped in the nursery's exception group.
            failure = error
        finally:
            local_calls = to_storage.calls + to_scheduler.calls
            LOGGER.info(
                "made %d in-process calls",
                local_calls.total(),
                extra={"rpc_local_calls": dict(local_calls)},
            )
        services.cancel_scope.cancel(reason="the execution manager has stopped")
    if failure is not None:
        raise failure


async def _serve_metrics(
    nursery: trio.Nursery, config: ExecutionManagerConfig, storage: Endpoint
) -> Endpoint | None:
    """Serve the cluster's metrics and health endpoints, and the dashboard unless it is off,
    in ``nursery``; where, or ``None`` if they are off. The default port, if busy, gives way to
    a free one: a second cluster on the machine (or a test run) must still start."""
    metrics = config.metrics_config(embedded=True)
    if not metrics.enabled:
        return None
    pages: dict[str, Route] = {}
    if config.embedded.dashboard:
        # The dashboard reads storage as any client does, over gRPC on loopback: it sees what
        # `spider` sees, and its sampling costs one status call every two seconds.
        client_config = ClientConfig(rpc=RpcConfig(tls=config.security.tls))
        pages = await nursery.start(run_dashboard_of, storage, client_config)
    serve = functools.partial(serve_http, pages=pages)
    try:
        port: int = await nursery.start(serve, metrics, "embedded cluster")
    except ListenError as error:
        if config.metrics is not None:
            raise
        LOGGER.warning("%s; serving the metrics on a free port instead", error)
        port = await nursery.start(serve, attrs.evolve(metrics, port=0), "embedded cluster")
    return Endpoint(metrics.host, port)


@asynccontextmanager
async def open_embedded_cluster(config: ExecutionManagerConfig) -> AsyncIterator[EmbeddedEndpoints]:
    """The embedded cluster for the block, for programs that bring their own cluster::

        async with open_embedded_cluster(config) as endpoints:
            async with open_client(endpoints.storage) as client:
                ...

    Leaving the block stops the EM gracefully (as SIGTERM would), then the services.
    """
    stop = EmStop(grace=config.shutdown_grace_sec, forced_bound=config.forced_shutdown_sec)
    async with trio.open_nursery() as nursery:
        endpoints: EmbeddedEndpoints = await nursery.start(run_embedded_cluster, config, stop)
        try:
            yield endpoints
        finally:
            stop.request("the embedded cluster's block ended")
