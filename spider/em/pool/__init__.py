"""The execution manager's process pool: task executors in slots, one task per slot at a time.

``open_process_pool(config)`` starts the slots; ``await slot.run(request)`` runs a
``TaskRequest`` and returns a ``TaskOutcome`` (``TaskSucceeded`` or ``TaskFailed`` with a
readable message), whatever the task or its executor did. ``docs/em-process-pool.md`` describes
slots, timeouts, crashes, failure messages, stderr forwarding and the recycle, memory-limit and
warm-spare options.
"""

from spider.em.pool.config import DEFAULT_MAX_LOG_LINE_BYTES, DEFAULT_RESPAWN_BACKOFF, PoolConfig
from spider.em.pool.errors import (
    ExecutorSpawnError,
    PoolClosedError,
    PoolError,
    SlotBusyError,
)
from spider.em.pool.outcome import (
    IN_TASK_FAILURE_PREFIX,
    PoolFailureKind,
    TaskFailed,
    TaskOutcome,
    TaskSucceeded,
)
from spider.em.pool.pool import ProcessPool, open_process_pool
from spider.em.pool.request import TaskRequest
from spider.em.pool.slot import ExecutorSlot, SlotStatistics

__all__ = [
    "DEFAULT_MAX_LOG_LINE_BYTES",
    "DEFAULT_RESPAWN_BACKOFF",
    "IN_TASK_FAILURE_PREFIX",
    "ExecutorSlot",
    "ExecutorSpawnError",
    "PoolClosedError",
    "PoolConfig",
    "PoolError",
    "PoolFailureKind",
    "ProcessPool",
    "SlotBusyError",
    "SlotStatistics",
    "TaskFailed",
    "TaskOutcome",
    "TaskRequest",
    "TaskSucceeded",
    "open_process_pool",
]
