"""The EM's clients over gRPC: one call per method, status codes mapped to domain errors.

Deadlines are set here, from ``ClientDeadlines``; retries are the runtime's, which knows what is
safe to repeat and when an answer has stopped mattering (a stale session, a shutdown).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs

from spider.core.assignment import ConsumedAssignment
from spider.core.exception_mapping import map_exceptions
from spider.core.ids import ExecutionManagerId, SessionId, TaskInstanceId
from spider.em.assignment import (
    Assignment,
    ExecutionContext,
    Registration,
    ReportTarget,
    RevokedInstances,
)
from spider.em.clients._convert import (
    assignment_from_proto,
    assignments_from_proto,
    execution_context_from_proto,
    item_statuses_from_proto,
    next_task_request_to_proto,
    next_tasks_request_to_proto,
    record_to_proto,
    registration_from_proto,
    registration_results_from_proto,
    registration_to_proto,
    registrations_to_proto,
    report_failure_to_proto,
    report_outcomes_to_proto,
    report_success_to_proto,
)
from spider.em.clients._mapping import (
    extension_missing,
    liveness_error,
    scheduler_error,
    storage_error,
)
from spider.em.errors import EmClientError, ExtensionUnavailable
from spider.em.pool import TaskOutcome
from spider.em.ports import EmClients
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from spider.proto.spider_py import revocation as revocation_pb
from spider.rpc import (
    Endpoint,
    RpcChannel,
    RpcConfig,
    RpcError,
    Status,
    TlsConfig,
    UnknownError,
    connect_channel,
    error_for_status,
)

_ErrorMapping = Callable[[RpcError, str], EmClientError]


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@attrs.frozen
class ClientDeadlines:
    """How long each RPC may take; no call is ever unbounded."""

    call: float = attrs.field(default=10.0, validator=_positive_seconds)
    """Registration, heartbeats, task-instance registration and reports."""
    next_task_margin: float = attrs.field(default=5.0, validator=_positive_seconds)
    """Added to the wait of ``NextTask`` and of ``WaitRevokedInstances``: the peer may hold the
    call for the whole wait."""
    shutdown: float = attrs.field(default=5.0, validator=_positive_seconds)
    """``Shutdown``."""


@attrs.define(eq=False)
class GrpcLivenessClient:
    """``storage.ExecutionManagerLivenessService`` over a channel."""

    _channel: RpcChannel
    _deadlines: ClientDeadlines

    async def register(self, ip_address: str) -> Registration:
        """``RegisterExecutionManager``."""
        operation = "RegisterExecutionManager"
        with _mapped(liveness_error, operation):
            response = await self._channel.call(
                storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
                storage_pb.RegisterExecutionManagerRequest(ip_address=ip_address),
                deadline=self._deadlines.call,
            )
        return registration_from_proto(response, operation=operation)

    async def heartbeat(self, em_id: ExecutionManagerId) -> SessionId:
        """``UpdateExecutionManagerHeartbeat``."""
        with _mapped(liveness_error, "UpdateExecutionManagerHeartbeat"):
            response = await self._channel.call(
                storage_pb.ExecutionManagerLivenessServiceStub.update_execution_manager_heartbeat,
                storage_pb.ExecutionManagerIdRequest(execution_manager_id=em_id),
                deadline=self._deadlines.call,
            )
        return SessionId(response.session_id)


@attrs.define(eq=False)
class GrpcSchedulerClient:
    """``scheduler.SchedulerService`` over a channel."""

    _channel: RpcChannel
    _deadlines: ClientDeadlines

    async def next_task(
        self, em_id: ExecutionManagerId, record: ConsumedAssignment | None, wait_ms: int
    ) -> Assignment | None:
        """One ``NextTask`` RPC, bounded by the wait plus ``next_task_margin``."""
        operation = "NextTask"
        with _mapped(scheduler_error, operation):
            response = await self._channel.call(
                scheduler_pb.SchedulerServiceStub.next_task,
                next_task_request_to_proto(em_id, record, wait_ms),
                deadline=wait_ms / 1000 + self._deadlines.next_task_margin,
                # Its answer hands over an assignment or an instance: never drop one.
                abandon_on_cancel=False,
            )
        return assignment_from_proto(response, operation=operation)

    async def next_tasks(
        self,
        em_id: ExecutionManagerId,
        records: Sequence[ConsumedAssignment],
        wait_ms: int,
        max_tasks: int,
    ) -> list[Assignment]:
        """One ``NextTasks`` RPC, bounded like ``NextTask``."""
        operation = "NextTasks"
        with _mapped(scheduler_error, operation, extension=True):
            response = await self._channel.call(
                execution_pb.TaskDispatchServiceStub.next_tasks,
                next_tasks_request_to_proto(em_id, records, wait_ms, max_tasks),
                deadline=wait_ms / 1000 + self._deadlines.next_task_margin,
                # Its answer hands over an assignment or an instance: never drop one.
                abandon_on_cancel=False,
            )
        return assignments_from_proto(response, max_tasks=max_tasks, operation=operation)

    async def heartbeat(self, em_id: ExecutionManagerId) -> None:
        """``Heartbeat``."""
        with _mapped(scheduler_error, "Heartbeat"):
            await self._channel.call(
                scheduler_pb.SchedulerServiceStub.heartbeat,
                scheduler_pb.HeartbeatRequest(execution_manager_id=em_id),
                deadline=self._deadlines.call,
            )

    async def shutdown(
        self, em_id: ExecutionManagerId, records: Sequence[ConsumedAssignment]
    ) -> None:
        """``Shutdown`` with every acknowledgement not sent yet."""
        with _mapped(scheduler_error, "Shutdown"):
            await self._channel.call(
                scheduler_pb.SchedulerServiceStub.shutdown,
                scheduler_pb.ShutdownRequest(
                    execution_manager_id=em_id,
                    prev_assignments=[record_to_proto(record) for record in records],
                ),
                deadline=self._deadlines.shutdown,
            )


@attrs.define(eq=False)
class GrpcStorageClient:
    """``storage.TaskInstanceManagementService`` over a channel."""

    _channel: RpcChannel
    _deadlines: ClientDeadlines

    async def register_task_instance(
        self, assignment: Assignment, em_id: ExecutionManagerId
    ) -> ExecutionContext:
        """``RegisterTaskInstance`` in the assignment's session."""
        operation = "RegisterTaskInstance"
        with _mapped(storage_error, operation):
            response = await self._channel.call(
                storage_pb.TaskInstanceManagementServiceStub.register_task_instance,
                registration_to_proto(assignment, em_id),
                deadline=self._deadlines.call,
                # Its answer hands over an assignment or an instance: never drop one.
                abandon_on_cancel=False,
            )
        return execution_context_from_proto(response, operation=operation)

    async def register_task_instances(
        self, assignments: Sequence[Assignment], em_id: ExecutionManagerId
    ) -> list[ExecutionContext | EmClientError]:
        """``RegisterTaskInstances``; each item's failure mapped as its single call's would be."""
        operation = "RegisterTaskInstances"
        with _mapped(storage_error, operation, extension=True):
            response = await self._channel.call(
                execution_pb.TaskInstanceBatchServiceStub.register_task_instances,
                registrations_to_proto(assignments, em_id),
                deadline=self._deadlines.call,
                # Its answer hands over an assignment or an instance: never drop one.
                abandon_on_cancel=False,
            )
        results = registration_results_from_proto(
            response, count=len(assignments), operation=operation
        )
        answers: list[ExecutionContext | EmClientError] = []
        for result in results:
            if isinstance(result, tuple):
                code, message = result
                answers.append(storage_error(_item_error(code, message), operation))
            else:
                answers.append(result)
        return answers

    async def report_success(self, target: ReportTarget, outputs: bytes) -> None:
        """``ReportTaskSuccess`` with the output wire frame verbatim."""
        with _mapped(storage_error, "ReportTaskSuccess"):
            await self._channel.call(
                storage_pb.TaskInstanceManagementServiceStub.report_task_success,
                report_success_to_proto(target, outputs),
                deadline=self._deadlines.call,
            )

    async def report_failure(self, target: ReportTarget, message: str) -> None:
        """``ReportTaskFailure`` with a readable message."""
        with _mapped(storage_error, "ReportTaskFailure"):
            await self._channel.call(
                storage_pb.TaskInstanceManagementServiceStub.report_task_failure,
                report_failure_to_proto(target, message),
                deadline=self._deadlines.call,
            )

    async def report_outcomes(
        self, reports: Sequence[tuple[ReportTarget, TaskOutcome]]
    ) -> list[EmClientError | None]:
        """``ReportTaskOutcomes``; each item's status mapped as its single report's would be."""
        operation = "ReportTaskOutcomes"
        with _mapped(storage_error, operation, extension=True):
            response = await self._channel.call(
                execution_pb.TaskInstanceBatchServiceStub.report_task_outcomes,
                report_outcomes_to_proto(reports),
                deadline=self._deadlines.call,
            )
        statuses = item_statuses_from_proto(response, count=len(reports), operation=operation)
        return [
            None
            if code == Status.OK.value
            else storage_error(_item_error(code, message), operation)
            for code, message in statuses
        ]

    async def wait_revoked_instances(
        self, em_id: ExecutionManagerId, session: SessionId, known_revision: int, wait_ms: int
    ) -> RevokedInstances:
        """``WaitRevokedInstances`` (Spider-py's extension), bounded by the wait plus
        ``next_task_margin``; a cancelled call is abandoned (the next poll asks again)."""
        with _mapped(storage_error, "WaitRevokedInstances", extension=True):
            response = await self._channel.call(
                revocation_pb.InstanceRevocationServiceStub.wait_revoked_instances,
                revocation_pb.WaitRevokedInstancesRequest(
                    execution_manager_id=em_id,
                    session_id=session,
                    known_revision=known_revision,
                    wait_time_ms=wait_ms,
                ),
                deadline=wait_ms / 1000 + self._deadlines.next_task_margin,
            )
        return RevokedInstances(
            SessionId(response.session_id),
            response.revision,
            tuple(TaskInstanceId(i) for i in response.task_instance_ids),
        )


def _mapped(
    to_client_error: _ErrorMapping, operation: str, *, extension: bool = False
) -> map_exceptions:
    """Raise ``to_client_error(error, operation)`` for an ``RpcError`` leaving the block; with
    ``extension``, ``ExtensionUnavailable`` if the peer does not serve a Spider-py call."""

    def translate(error: RpcError) -> EmClientError:
        if extension and extension_missing(error):
            return ExtensionUnavailable(error.message, operation=operation)
        return to_client_error(error, operation)

    return map_exceptions({RpcError: translate})


def _item_error(code: int, message: str) -> RpcError:
    """The ``RpcError`` a single RPC would have raised for a batch item's status."""
    try:
        status = Status(code)
    except ValueError:
        return UnknownError(f"unknown status code {code}: {message}")
    return error_for_status(status, message)


@asynccontextmanager
async def open_grpc_clients(
    storage: Endpoint,
    scheduler: Endpoint,
    *,
    connection_pool_size: int = 1,
    deadlines: ClientDeadlines = ClientDeadlines(),
    tls: TlsConfig | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> AsyncIterator[EmClients]:
    """Channels to storage and the scheduler for the block, as the runtime's clients.

    Like upstream, the two storage services get separate connection
    pools, so a burst of reports never queues a heartbeat behind it on one HTTP/2 connection.
    Connections are made lazily: opening succeeds even if the peers are not up yet. ``tls`` and
    ``metadata`` (the cluster credential) apply to every call (docs/security.md).
    """
    config = RpcConfig(
        default_deadline=deadlines.call,
        connection_pool_size=connection_pool_size,
        tls=tls,
        metadata=metadata,
    )
    async with (
        connect_channel(storage, config) as liveness_channel,
        connect_channel(storage, config) as storage_channel,
        connect_channel(scheduler, config) as scheduler_channel,
    ):
        storage_client = GrpcStorageClient(storage_channel, deadlines)
        yield EmClients(
            liveness=GrpcLivenessClient(liveness_channel, deadlines),
            scheduler=GrpcSchedulerClient(scheduler_channel, deadlines),
            storage=storage_client,
            revocation=storage_client,
        )


def local_clients(
    storage: RpcChannel, scheduler: RpcChannel, deadlines: ClientDeadlines = ClientDeadlines()
) -> EmClients:
    """The runtime's clients over given channels: ``LocalChannel`` s in the embedded cluster,
    where storage and the scheduler run in this process. The same clients, status mapping and
    deadlines as over gRPC."""
    storage_client = GrpcStorageClient(storage, deadlines)
    return EmClients(
        liveness=GrpcLivenessClient(storage, deadlines),
        scheduler=GrpcSchedulerClient(scheduler, deadlines),
        storage=storage_client,
        revocation=storage_client,
    )
