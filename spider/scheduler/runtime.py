"""``run_scheduler``: the whole scheduler inside an already running Trio program."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Final

import trio

from spider.core.exception_groups import leaves_if_only
from spider.core.supervision import supervise
from spider.observability import READINESS, serve_http
from spider.rpc import RpcChannel, RpcConfig, ServerConfig, ServiceBase, connect_channel, serve
from spider.rpc.auth import cluster_auth, cluster_metadata
from spider.scheduler import metrics
from spider.scheduler.config import SchedulerConfig
from spider.scheduler.core import SchedulerCore
from spider.scheduler.dispatch_service import TaskDispatchService
from spider.scheduler.em_registry import ExecutionManagerRegistry
from spider.scheduler.errors import SchedulerError
from spider.scheduler.service import SchedulerService
from spider.scheduler.storage_link import StorageLink

LOGGER: Final = logging.getLogger("spider.scheduler")


async def run_scheduler(
    config: SchedulerConfig,
    *,
    storage_channel: RpcChannel | None = None,
    local_services: list[ServiceBase] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``scheduler.SchedulerService`` (and Spider-py's ``TaskDispatchService``) and place
    storage's ready work until cancelled.

    ``task_status`` gets the bound
    port (``config.port`` 0 picks a free one) as soon as the service accepts calls; registering
    with storage happens after that and is retried until storage answers, so the scheduler may
    start before storage. Raises ``ListenError`` when the port cannot be bound, and a
    ``SchedulerError`` on a fatal error (storage refuses the registration, or its sessions went
    backwards); storage being down or restarting is not one.

    The embedded cluster passes ``storage_channel`` (a ``LocalChannel`` to the storage in the
    same process, instead of a connection to ``config.storage_endpoint``) and
    ``local_services``, which gets the served services to call them in process.
    """
    runtime = config.runtime
    security = config.security
    rpc_config = RpcConfig(
        default_deadline=runtime.storage_call_deadline_sec,
        connection_pool_size=config.connection_pool_size,
        tls=security.tls,
        metadata=cluster_metadata(security),
    )
    # Only EMs call the scheduler: every service it serves needs the cluster credential.
    serving = ServerConfig(tls=security.tls, auth=cluster_auth(security))
    async with contextlib.AsyncExitStack() as stack:
        channel = storage_channel
        if channel is None:
            endpoint = config.storage_endpoint.endpoint()
            channel = await stack.enter_async_context(connect_channel(endpoint, rpc_config))
        core = SchedulerCore(
            config.round_robin,
            StorageLink(channel, runtime.storage_call_deadline_sec),
            runtime.storage_reconnect.backoff(),
        )
        registry = ExecutionManagerRegistry(
            runtime.em_registry.dead_em_cutoff_sec, core.reschedule, core.identity.own_ids
        )
        services: list[ServiceBase] = [
            SchedulerService(core.queue, registry, core.identity),
            # Spider-py's extension beside Spider's service: upstream EMs never call it.
            TaskDispatchService(core.queue, registry, core.identity),
        ]
        try:
            async with trio.open_nursery() as nursery:
                port: int = await nursery.start(
                    functools.partial(serve, config=serving), services, config.host, config.port
                )
                if local_services is not None:
                    local_services.extend(services)
                stack.enter_context(metrics.collecting(core, registry))
                stack.enter_context(READINESS.check("scheduler", core.storage_reason))
                if config.metrics.enabled:
                    await nursery.start(serve_http, config.metrics, "scheduler")
                # Supervised: a bug restarts them with backoff; a fatal error (FatalError: storage
                # refused us, its sessions went backwards) is not restarted and ends the service.
                nursery.start_soon(
                    supervise,
                    "EM liveness tracking",
                    registry.track_liveness,
                    runtime.em_registry.liveness_tracking_interval_ms / 1000,
                )
                nursery.start_soon(
                    supervise, "scheduler core loop", core.run, config.advertised_endpoint(port)
                )
                LOGGER.info(
                    "scheduler listening on %s:%d; storage at %s",
                    config.host,
                    port,
                    config.storage_endpoint.endpoint(),
                    extra={"host": config.host, "port": port},
                )
                task_status.started(port)
        except BaseExceptionGroup as group:
            fatal = leaves_if_only(group, SchedulerError)
            if fatal is None:
                raise
            raise fatal[0] from group
