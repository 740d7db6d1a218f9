"""The scheduler: orders storage's ready work round robin over jobs and hands it to EMs.

Run it as ``python -m spider.scheduler`` or, inside a Trio program,
with ``await nursery.start(run_scheduler, config)`` (which returns the bound port).
docs/scheduler.md describes the configuration, the placement rules and the failure modes.
"""

from spider.rpc import EndpointConfig
from spider.scheduler.config import (
    EmRegistryConfig,
    Policy,
    PolicyConfig,
    ReconnectConfig,
    RoundRobinConfig,
    SchedulerConfig,
    SchedulerRuntimeConfig,
    load_scheduler_config,
)
from spider.scheduler.errors import (
    ExecutionManagerNotFound,
    InvalidSessionId,
    SchedulerError,
    StorageRejected,
)
from spider.scheduler.runtime import run_scheduler

__all__ = [
    "EmRegistryConfig",
    "EndpointConfig",
    "ExecutionManagerNotFound",
    "InvalidSessionId",
    "Policy",
    "PolicyConfig",
    "ReconnectConfig",
    "RoundRobinConfig",
    "SchedulerConfig",
    "SchedulerError",
    "SchedulerRuntimeConfig",
    "StorageRejected",
    "load_scheduler_config",
    "run_scheduler",
]
