"""The storage service's configuration: Spider's keys, plus Spider-py additions with defaults.

YAML shape (every key optional; ``spider.core.config`` rejects unknown keys by name)::

    host: 0.0.0.0
    port: 50051
    runtime:
      db: {sqlite: /var/lib/spider/storage.db}   # or Spider's MariaDB form; default: SQLite
      inbound_queue: {task_capacity: 65536, commit_capacity: 1024, cleanup_capacity: 1024}
      task_instance_pool:
        gc_interval_sec: 30
        execution_manager_stale_cutoff_sec: 60
        hard_timeout_grace_sec: 30          # Spider-py: storage-side hard timeout
      job_cache_gc: {gc_interval_sec: 30, terminated_job_retention_sec: 300}
      db_retention_sec: 604800              # Spider-py: delete terminated jobs after 7 days
      db_threads: 8                         # Spider-py: worker threads for database calls
      max_job_wait_sec: 60                  # Spider-py: the longest one WaitForJob waits
      limits:                               # Spider-py: what one request may carry
        max_request_bytes: 134217728        # 128 MiB: any request message
        max_task_graph_bytes: 268435456     # 256 MiB: a job's decompressed task graph
        max_job_inputs_bytes: 67108864      # 64 MiB: a job's decompressed inputs
        max_task_outputs_bytes: 67108864    # 64 MiB: one task's reported outputs
        max_job_outputs_bytes: 268435456    # 256 MiB: all of a job's tasks' outputs
        max_error_message_chars: 65536      # longer failure messages are truncated
    security:                               # Spider-py: all off by default (docs/security.md)
      tls: {cert: storage.pem, key: storage.key, ca: ca.pem, require_client_cert: false}
      cluster_token_file: /etc/spider/cluster-token   # EMs and schedulers must present it
      require_group_credentials: false      # job calls must carry their group's password
    metrics: {host: 127.0.0.1, port: 9464}  # Spider-py: /metrics, /healthz, /readyz; off by default
"""

from __future__ import annotations

import math

import attrs

from spider.observability import MetricsConfig
from spider.rpc import MAX_REQUEST_BYTES, SecurityConfig
from spider.storage.db.config import DatabaseConfig

MIB = 1 << 20


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if isinstance(value, bool) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be >= 0 seconds, got {value!r}")


def _valid_port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {value!r}")


@attrs.frozen
class InboundQueueConfig:
    """Depth of each lane of the inbound queue above which storage warns (see ``InboundQueue``)."""

    task_capacity: int = attrs.field(default=65_536, validator=_positive_int)
    commit_capacity: int = attrs.field(default=1_024, validator=_positive_int)
    cleanup_capacity: int = attrs.field(default=1_024, validator=_positive_int)


@attrs.frozen
class TaskInstancePoolConfig:
    """Liveness and timeout sweeps over live task instances."""

    gc_interval_sec: float = attrs.field(default=30.0, validator=_positive_seconds)
    """Seconds between sweeps (dead EMs, soft and hard timeouts)."""
    execution_manager_stale_cutoff_sec: float = attrs.field(
        default=60.0, validator=_positive_seconds
    )
    """An EM whose last heartbeat is older than this is declared dead."""
    hard_timeout_grace_sec: float = attrs.field(default=30.0, validator=_non_negative_seconds)
    """Storage removes an instance older than its hard timeout plus this grace and retries it,
    so an EM that hangs while heartbeating cannot stall a job; the grace leaves the EM time to
    kill the task and report the timeout itself."""
    message_channel_capacity: int = attrs.field(default=128, validator=_positive_int)
    """Accepted for compatibility with Spider's config files; Spider-py's pool has no channel."""


@attrs.frozen
class JobCacheGcConfig:
    """How long terminated jobs stay in memory."""

    gc_interval_sec: float = attrs.field(default=30.0, validator=_positive_seconds)
    terminated_job_retention_sec: float = attrs.field(default=300.0, validator=_positive_seconds)


@attrs.frozen
class LimitsConfig:
    """What one request may carry (docs/limits.md). Each refusal names its setting."""

    max_request_bytes: int = attrs.field(default=MAX_REQUEST_BYTES, validator=_positive_int)
    """A request message over this is RESOURCE_EXHAUSTED before its body is read."""
    max_task_graph_bytes: int = attrs.field(default=256 * MIB, validator=_positive_int)
    """A job's task graph, decompressed (JSON); more is INVALID_ARGUMENT."""
    max_job_inputs_bytes: int = attrs.field(default=64 * MIB, validator=_positive_int)
    """A job's inputs, decompressed; more is INVALID_ARGUMENT, so a zstd bomb is refused at
    this size and never held by a waiting job."""
    max_task_outputs_bytes: int = attrs.field(default=64 * MIB, validator=_positive_int)
    """One task's reported outputs; a larger ReportTaskSuccess is INVALID_ARGUMENT."""
    max_job_outputs_bytes: int = attrs.field(default=256 * MIB, validator=_positive_int)
    """The outputs of all of a job's tasks together, which storage holds while the job runs
    (they feed its other tasks) and keeps as its outputs; a report that would pass it is
    INVALID_ARGUMENT (Spider-py's EMs then report the task as failed)."""
    max_error_message_chars: int = attrs.field(default=64 * 1024, validator=_positive_int)
    """One task's failure message, and so a job's error; a longer one is truncated (with a
    marker) rather than refused, so that a failure is never lost."""


@attrs.frozen
class StorageRuntimeConfig:
    """Storage's ``runtime`` block: Spider's keys, plus Spider-py's retention and threads."""

    db: DatabaseConfig | None = None
    """Spider's MariaDB form or ``{sqlite: PATH}``; ``None`` = SQLite in the data directory."""
    inbound_queue: InboundQueueConfig = attrs.field(factory=InboundQueueConfig)
    task_instance_pool: TaskInstancePoolConfig = attrs.field(factory=TaskInstancePoolConfig)
    job_cache_gc: JobCacheGcConfig = attrs.field(factory=JobCacheGcConfig)
    db_retention_sec: float = attrs.field(default=7 * 24 * 3600.0, validator=_positive_seconds)
    """Terminated jobs (and their task outputs) are deleted from the database after this."""
    db_threads: int = attrs.field(default=8, validator=_positive_int)
    """Worker threads that may run database calls at once."""
    max_job_wait_sec: float = attrs.field(default=60.0, validator=_non_negative_seconds)
    """The longest one WaitForJob (Spider-py's jobs extension) waits, whatever ``wait_ms`` the
    client asks for; the client asks again. Bounds how long a waiter holds a stream open."""
    limits: LimitsConfig = attrs.field(factory=LimitsConfig)
    """What one request may carry."""


@attrs.frozen
class StorageConfig:
    """The whole storage service configuration."""

    host: str = "0.0.0.0"
    port: int = attrs.field(default=50051, validator=_valid_port)
    runtime: StorageRuntimeConfig = attrs.field(factory=StorageRuntimeConfig)
    security: SecurityConfig = attrs.field(factory=SecurityConfig)
    """Spider-py: TLS and the cluster credential (docs/security.md); off by default."""
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    """Spider-py: Prometheus metrics and health endpoints over HTTP; off by default."""
