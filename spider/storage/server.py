"""Serving storage: what to open (``StorageLaunch``) and ``serve_storage``, which runs it.

Startup follows Spider (#398): database and schema, a new session, recovery of the job cache,
serve gRPC, and only then re-enqueue the recovered jobs' ready work, so that the scheduler can
already drain the queue. ``python -m spider.storage`` (``spider.storage.cli``) and the embedded
cluster (``spider.cluster``) both serve storage through this module.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Final

import attrs
import trio

from spider.observability import READINESS, serve_http
from spider.rpc import ServerConfig, ServiceBase, serve
from spider.rpc.auth import cluster_auth
from spider.storage import metrics
from spider.storage.config import StorageConfig
from spider.storage.db import DatabaseConfig, open_database
from spider.storage.service import storage_services
from spider.storage.state import StorageState, open_storage_state

LOGGER: Final = logging.getLogger("spider.storage")

SQLITE_FILE_NAME: Final = "storage.db"
"""The SQLite database's file name in a data directory, when no database is configured."""


CLIENT_SERVICES: Final = frozenset(
    {
        "storage.JobOrchestrationService",
        "storage.ResourceGroupManagementService",
        "storage.SessionManagementService",
        "spider_py.jobs.JobSubmissionService",
        "spider_py.status.ClusterStatusService",
        "spider_py.catalog.JobCatalogService",
        # The client's cluster status lists the schedulers; registering one stays guarded.
        "/storage.SchedulerRegistrationService/GetSchedulers",
    }
)
"""The services (and single routes) a client calls: they stay open when the cluster credential
is on. Every other service (task instances, reports, polls of ready work, EM and scheduler registration,
revocations) is called by EMs and schedulers only, and needs it (docs/security.md)."""


def server_config(config: StorageConfig) -> ServerConfig:
    """How storage serves: its request limit, TLS, and the credential on the services that are
    not clients'."""
    return ServerConfig(
        max_request_bytes=config.runtime.limits.max_request_bytes,
        tls=config.security.tls,
        auth=cluster_auth(config.security, CLIENT_SERVICES),
    )


@attrs.frozen
class StorageLaunch:
    """What to serve: the service's configuration and the database to open."""

    config: StorageConfig
    database: DatabaseConfig


async def serve_storage(
    launch: StorageLaunch,
    environ: Mapping[str, str] = os.environ,
    *,
    local_services: list[ServiceBase] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve storage until cancelled.

    ``task_status`` gets the bound port once the service is serving and the recovered jobs'
    ready work is enqueued. The embedded cluster runs storage this way, beside the other parts;
    it passes ``local_services``, which gets the served service objects, to call them in
    process (``spider.rpc.LocalChannel``).
    """
    config = launch.config
    serving = server_config(config)  # reads the token and certificates: fail early
    database = open_database(launch.database, environ)
    try:
        async with open_storage_state(config, database) as state, trio.open_nursery() as nursery:
            services = storage_services(state)
            port: int = await nursery.start(
                functools.partial(serve, config=serving), services, config.host, config.port
            )
            with (
                metrics.collecting(state),
                READINESS.check("storage", _database_reason(state)),
            ):
                if config.metrics.enabled:
                    await nursery.start(serve_http, config.metrics, "storage")
                if local_services is not None:
                    local_services.extend(services)
                LOGGER.info(
                    "storage listening on %s:%d (session %d)",
                    config.host,
                    port,
                    state.session,
                    extra={"host": config.host, "port": port, "session_id": state.session},
                )
                # Only now (#398): the lanes are drained by a scheduler that can reach us.
                offered = state.lifecycle.resend_ready_work()
                LOGGER.info("enqueued %d ready task(s) of recovered jobs", offered)
                task_status.started(port)
                await trio.sleep_forever()
    finally:
        database.close()


def _database_reason(state: StorageState) -> Callable[[], str | None]:
    """Storage's readiness: serving, and its database took the last write."""
    outage = state.persistence.outage

    def reason() -> str | None:
        if outage.ongoing:
            return f"the database is unavailable: {outage.reason}"
        return None

    return reason
