"""The storage service's gRPC layer: Spider's seven storage services over a ``StorageState``,
plus Spider-py's extensions: ``ClusterStatusService`` (package ``spider_py.status``) and
``JobSubmissionService`` (package ``spider_py.jobs``), ``TaskInstanceBatchService`` (package
``spider_py.execution``), ``InstanceRevocationService`` (package ``spider_py.revocation``) and
``AcknowledgedInboundQueueService`` (package ``spider_py.inbound``).

Each service translates proto messages to domain values (``_unpack``), makes one domain call
(``JobLifecycle`` for jobs and task instances, ``StorageState`` for what adds checks of its own)
and translates domain errors to their gRPC status (``_errors``)::

    port = await nursery.start(serve, storage_services(state), host, port)
"""

from __future__ import annotations

from spider.rpc import ServiceBase
from spider.storage.service._group_gate import GroupGate
from spider.storage.service.acknowledged_inbound_queue import AcknowledgedInboundQueueService
from spider.storage.service.cluster_status import ClusterStatusService
from spider.storage.service.inbound_queue import InboundQueueService
from spider.storage.service.job_catalog import JobCatalogService
from spider.storage.service.job_orchestration import JobOrchestrationService
from spider.storage.service.job_submission import JobSubmissionService
from spider.storage.service.liveness import ExecutionManagerLivenessService
from spider.storage.service.resource_groups import ResourceGroupManagementService
from spider.storage.service.revocations import InstanceRevocationService
from spider.storage.service.schedulers import SchedulerRegistrationService
from spider.storage.service.sessions import SessionManagementService
from spider.storage.service.task_instance_batches import TaskInstanceBatchService
from spider.storage.service.task_instances import TaskInstanceManagementService
from spider.storage.state import StorageState

__all__ = [
    "AcknowledgedInboundQueueService",
    "ClusterStatusService",
    "ExecutionManagerLivenessService",
    "InboundQueueService",
    "InstanceRevocationService",
    "JobCatalogService",
    "JobOrchestrationService",
    "JobSubmissionService",
    "ResourceGroupManagementService",
    "SchedulerRegistrationService",
    "SessionManagementService",
    "TaskInstanceBatchService",
    "TaskInstanceManagementService",
    "storage_services",
]


def storage_services(state: StorageState) -> list[ServiceBase]:
    """Spider's seven services and Spider-py's extensions, all backed by ``state``, ready for
    ``spider.rpc.serve``."""
    task_instances = TaskInstanceManagementService(state)
    gate = GroupGate(state)
    return [
        JobOrchestrationService(state, gate),
        task_instances,
        InboundQueueService(state),
        ResourceGroupManagementService(state),
        ExecutionManagerLivenessService(state),
        SchedulerRegistrationService(state),
        SessionManagementService(state),
        # Spider-py's extensions: upstream clients never call them.
        ClusterStatusService(state),
        JobSubmissionService(state, gate),
        TaskInstanceBatchService(task_instances),
        InstanceRevocationService(state),
        AcknowledgedInboundQueueService(state),
        JobCatalogService(state, gate),
    ]
