"""The storage service: jobs, task instances, sessions and EM liveness, on SQLite or MariaDB.

``open_storage_state`` opens a ``StorageState``: the schema, a new session, the recovered job
cache (``JobLifecycle``, which holds every job and task operation) and the GC loops. Domain
operations take and return plain values and raise ``StorageError`` subclasses, each answered
with the gRPC status ``grpc_status(error)`` gives. ``docs/storage-model.md`` describes the job
model; ``spider.storage.server`` serves it.
"""

from spider.core.ready_task import ReadyTask
from spider.storage.config import (
    InboundQueueConfig,
    JobCacheGcConfig,
    StorageConfig,
    StorageRuntimeConfig,
    TaskInstancePoolConfig,
)
from spider.storage.errors import (
    GRPC_STATUS,
    BadRequest,
    CacheStale,
    EmDead,
    IllegalEmId,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    ResourceGroupExists,
    StaleReason,
    StaleSession,
    StorageError,
    StorageInternalError,
    StorageUnavailable,
    grpc_status,
)
from spider.storage.inbound_queue import Lane
from spider.storage.instance_gc import SweepReport
from spider.storage.job_lifecycle import InstanceContext
from spider.storage.recovery import RecoveryReport
from spider.storage.state import (
    AcknowledgedReadyTasks,
    ExecutionManagerRegistration,
    ReadyTaskBatch,
    RegisteredScheduler,
    SchedulerRegistration,
    StorageState,
    open_storage_state,
)

__all__ = [
    "GRPC_STATUS",
    "AcknowledgedReadyTasks",
    "BadRequest",
    "CacheStale",
    "EmDead",
    "ExecutionManagerRegistration",
    "IllegalEmId",
    "InboundQueueConfig",
    "InstanceContext",
    "InvalidJobState",
    "InvalidResourceGroup",
    "JobCacheGcConfig",
    "JobNotFound",
    "Lane",
    "ReadyTask",
    "ReadyTaskBatch",
    "RecoveryReport",
    "RegisteredScheduler",
    "ResourceGroupExists",
    "SchedulerRegistration",
    "StaleReason",
    "StaleSession",
    "StorageConfig",
    "StorageError",
    "StorageInternalError",
    "StorageRuntimeConfig",
    "StorageState",
    "StorageUnavailable",
    "SweepReport",
    "TaskInstancePoolConfig",
    "grpc_status",
    "open_storage_state",
]
