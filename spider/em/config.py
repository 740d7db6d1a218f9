"""The execution manager's configuration: Spider's YAML keys plus Spider-py's additions.

::

    storage:   {host: 127.0.0.1, port: 50051}    # without both: the embedded cluster
    scheduler: {host: 127.0.0.1, port: 50052}
    embedded:  {data_dir: spider-data, host: 127.0.0.1, storage_port: 50051, scheduler_port: 50052}
    liveness:  {storage_heartbeat_interval_sec: 1, scheduler_heartbeat_interval_sec: 1}
    task_executor:
      package_dir: /opt/spider/packages        # required; or a list, searched in order
      bin_path: null                           # default: the bundled Python executor
      max_log_line_bytes: 65536
      inherited_env: []
      max_frame_bytes: 8388608                 # Spider-py additions from here on
      recycle_after_tasks: null
      memory_limit_mb: null
      warm_spare: true
    connection_pool_size: 4
    scheduler_poll_wait_ms: 1000
    executors: 1
    shutdown_grace_sec: 30
    max_pending_reports: 256
    report_senders: 4
    execution_extension: {enabled: true, max_tasks_per_poll: 4, prefetch_per_slot: 1, max_report_batch: 64,
                          revocation_poll_wait_ms: 10000}
    shutdown_drain_sec: 5
    forced_shutdown_sec: 2
    on_declared_dead: rejoin                   # or exit (upstream Spider's behaviour)
    advertised_host: null                      # registered with storage; default: the address
                                               # this machine reaches storage from
    rpc:
      deadline_sec: 10
      next_task_margin_sec: 5
      shutdown_deadline_sec: 5
      shutdown_bound_sec: 10
      retry: {initial_sec: 0.1, cap_sec: 5, multiplier: 2, jitter_sec: 0.1, server_error_attempts: 5}
    log_format: json                           # or human
    security:                                  # off by default (docs/security.md)
      tls: {ca: ca.pem, cert: em.pem, key: em.key}   # cert/key: for servers that require them
      cluster_token_file: /etc/spider/cluster-token  # presented to storage and the scheduler
    metrics: {host: 127.0.0.1, port: 9466}     # /metrics, /healthz, /readyz; default: off, but
                                               # the embedded cluster's is on (port 9464)

Durations may be fractional. ``load_em_config`` layers, from lowest to highest precedence: the
defaults, the file, ``SPIDER_EM_*`` environment variables, then command-line overrides.
docs/execution-manager.md, "Configuration reference", is the reference.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from spider.core.backoff import Backoff
from spider.core.config import (
    ConfigError,
    merge_overrides,
    read_config_file,
    structure_config,
    structure_with_converters,
)
from spider.em._retry import RetryPolicy
from spider.em.clients import ClientDeadlines
from spider.em.life import OnDeclaredDead
from spider.em.pool import DEFAULT_MAX_LOG_LINE_BYTES, PoolConfig
from spider.em.reporting import DEFAULT_MAX_PENDING_REPORTS, DEFAULT_REPORT_SENDERS
from spider.em.runtime import PLACEHOLDER_IP, ExtensionSettings, RuntimeSettings
from spider.executor import DEFAULT_MAX_FRAME_BYTES
from spider.executor.protocol import decode_package_dir, validate_package_dir
from spider.observability import MetricsConfig
from spider.rpc import Endpoint, EndpointConfig, SecurityConfig

EMBEDDED_METRICS: Final = MetricsConfig(host="127.0.0.1", port=9464)
"""The embedded cluster's metrics when the file has no ``metrics`` block (a busy port falls
back to a free one, printed at start)."""

ENV_PREFIX: Final = "SPIDER_EM_"

ENV_OVERRIDES: Final = {
    "SPIDER_EM_STORAGE": "storage",
    "SPIDER_EM_SCHEDULER": "scheduler",
    "SPIDER_EM_DATA_DIR": "embedded.data_dir",
    "SPIDER_EM_PACKAGE_DIR": "task_executor.package_dir",
    "SPIDER_EM_EXECUTORS": "executors",
    "SPIDER_EM_SHUTDOWN_GRACE_SEC": "shutdown_grace_sec",
    "SPIDER_EM_HOST": "embedded.host",
    "SPIDER_EM_STORAGE_PORT": "embedded.storage_port",
    "SPIDER_EM_SCHEDULER_PORT": "embedded.scheduler_port",
    "SPIDER_EM_METRICS_PORT": "metrics.port",
    "SPIDER_EM_ADVERTISED_HOST": "advertised_host",
}
"""Environment variables and the key each one sets (endpoints as ``host:port``, package
directories separated by ``os.pathsep``)."""

_MIB: Final = 1024 * 1024


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (_is_number(value) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (_is_number(value) and value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be >= 0 seconds, got {value!r}")


def _int_at_least(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _optional_int_at_least(minimum: int) -> Any:
    check = _int_at_least(minimum)

    def optional(
        instance: object, attribute: attrs.Attribute[int | None], value: int | None
    ) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


def _non_empty(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


class LogFormat(enum.StrEnum):
    """How the EM writes its log lines on stderr."""

    JSON = "json"
    HUMAN = "human"


def _valid_listen_port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be an integer from 0 to 65535, got {value!r}")


@attrs.frozen
class EmbeddedConfig:
    """The single-node cluster run when neither ``storage`` nor ``scheduler`` is set."""

    data_dir: Path = Path("spider-data")
    """Where storage keeps its SQLite database (``storage.db``); created if missing."""
    host: str = attrs.field(default="127.0.0.1", validator=_non_empty)
    """Where storage and the scheduler listen; loopback, as neither authenticates its peers."""
    storage_port: int = attrs.field(default=50051, validator=_valid_listen_port)
    scheduler_port: int = attrs.field(default=50052, validator=_valid_listen_port)
    """0 picks a free port (the chosen one is logged and printed)."""
    dashboard: bool = True
    """Serve the web dashboard (docs/dashboard.md) at ``/`` of the metrics port; it is served
    only while that port is on (``metrics``)."""


@attrs.frozen
class LivenessConfig:
    """Heartbeat periods."""

    storage_heartbeat_interval_sec: float = attrs.field(default=1.0, validator=_positive_seconds)
    scheduler_heartbeat_interval_sec: float = attrs.field(default=1.0, validator=_positive_seconds)


@attrs.frozen
class TaskExecutorConfig:
    """How executors are started, and the limits they run under."""

    package_dir: tuple[Path, ...] = attrs.field(converter=validate_package_dir)
    """Where TDL packages live: one directory, or a list searched in order (the first holding a
    package provides it); becomes the executors' ``SPIDER_TDL_PACKAGE_DIR``."""
    bin_path: Path | None = None
    """The executor program; ``None`` for the bundled ``spider-task-executor``."""
    max_log_line_bytes: int = attrs.field(
        default=DEFAULT_MAX_LOG_LINE_BYTES, validator=_int_at_least(16)
    )
    inherited_env: tuple[str, ...] = ()
    max_frame_bytes: int = attrs.field(
        default=DEFAULT_MAX_FRAME_BYTES, validator=_int_at_least(1024)
    )
    """The executor protocol's frame limit: bounds a task's inputs and outputs."""
    recycle_after_tasks: int | None = attrs.field(default=None, validator=_optional_int_at_least(1))
    memory_limit_mb: int | None = attrs.field(default=None, validator=_optional_int_at_least(32))
    """Address-space limit of each executor, in MiB; ``None`` for none."""
    warm_spare: bool = True
    """Keep a started executor in reserve per slot, so a crash or timeout costs no start-up."""


structure_with_converters(TaskExecutorConfig)


@attrs.frozen
class RetryConfig:
    """Backoff of retried calls to storage and the scheduler."""

    initial_sec: float = attrs.field(default=0.1, validator=_positive_seconds)
    cap_sec: float = attrs.field(default=5.0, validator=_positive_seconds)
    multiplier: float = attrs.field(default=2.0, validator=_positive_seconds)
    jitter_sec: float = attrs.field(default=0.1, validator=_non_negative_seconds)
    server_error_attempts: int = attrs.field(default=5, validator=_int_at_least(1))
    """Attempts a call gets while the peer fails internally; transport failures are retried
    until the result stops mattering."""

    def policy(self) -> RetryPolicy:
        """The runtime's retry policy."""
        return RetryPolicy(
            backoff=Backoff(
                initial=self.initial_sec,
                cap=self.cap_sec,
                multiplier=self.multiplier,
                jitter=self.jitter_sec,
            ),
            server_error_attempts=self.server_error_attempts,
        )


@attrs.frozen
class RpcSettingsConfig:
    """Deadlines and retries of the EM's RPCs."""

    deadline_sec: float = attrs.field(default=10.0, validator=_positive_seconds)
    """Each attempt of registration, heartbeats, task registration and reports."""
    next_task_margin_sec: float = attrs.field(default=5.0, validator=_positive_seconds)
    """``NextTask``'s deadline is ``scheduler_poll_wait_ms`` plus this."""
    shutdown_deadline_sec: float = attrs.field(default=5.0, validator=_positive_seconds)
    """Each attempt of the ``Shutdown`` RPC."""
    shutdown_bound_sec: float = attrs.field(default=10.0, validator=_positive_seconds)
    """The ``Shutdown`` RPC, retries included."""
    retry: RetryConfig = attrs.field(factory=RetryConfig)


@attrs.frozen
class ExecutionExtensionConfig:
    """Spider-py's batched execution RPCs; peers that do not serve them get Spider's."""

    enabled: bool = True
    max_tasks_per_poll: int = attrs.field(default=4, validator=_int_at_least(1))
    """The most assignments one ``NextTasks`` asks for."""
    prefetch_per_slot: int = attrs.field(default=1, validator=_int_at_least(0))
    """Assignments received ahead of a free slot, per slot (not registered until started)."""
    max_report_batch: int = attrs.field(default=64, validator=_int_at_least(1))
    """The most outcomes one ``ReportTaskOutcomes`` carries."""
    revocation_poll_wait_ms: int = attrs.field(default=10_000, validator=_int_at_least(1))
    """How long one ``WaitRevokedInstances`` long poll may wait at storage (it caps it at 60 s)."""

    def settings(self) -> ExtensionSettings:
        """The runtime's view."""
        return ExtensionSettings(
            enabled=self.enabled,
            max_tasks_per_poll=self.max_tasks_per_poll,
            prefetch_per_slot=self.prefetch_per_slot,
            max_report_batch=self.max_report_batch,
            revocation_poll_wait_ms=self.revocation_poll_wait_ms,
        )


@attrs.frozen
class ExecutionManagerConfig:
    """The whole ``python -m spider.em`` configuration."""

    task_executor: TaskExecutorConfig
    storage: EndpointConfig | None = None
    scheduler: EndpointConfig | None = None
    embedded: EmbeddedConfig = attrs.field(factory=EmbeddedConfig)
    liveness: LivenessConfig = attrs.field(factory=LivenessConfig)
    connection_pool_size: int = attrs.field(default=4, validator=_int_at_least(1))
    scheduler_poll_wait_ms: int = attrs.field(default=1000, validator=_int_at_least(0))
    executors: int = attrs.field(default=1, validator=_int_at_least(1))
    """Slots: tasks that run at the same time, each in its own executor."""
    shutdown_grace_sec: float = attrs.field(default=30.0, validator=_non_negative_seconds)
    """After a stop request, how long a running task may go on before it is killed."""
    shutdown_drain_sec: float = attrs.field(default=5.0, validator=_non_negative_seconds)
    """Once every task has ended, how long outcome reports may take to reach storage."""
    forced_shutdown_sec: float = attrs.field(default=2.0, validator=_non_negative_seconds)
    """After a second stop request: the bound on reports, then on ``Shutdown``."""
    on_declared_dead: OnDeclaredDead = OnDeclaredDead.REJOIN
    """When storage declares the EM dead: register again under a new id, keeping the
    executors (``rejoin``), or stop with status 1 (``exit``)."""
    max_pending_reports: int = attrs.field(
        default=DEFAULT_MAX_PENDING_REPORTS, validator=_int_at_least(1)
    )
    """Outcomes queued or being reported before a dispatch loop waits to hand over its own."""
    report_senders: int = attrs.field(default=DEFAULT_REPORT_SENDERS, validator=_int_at_least(1))
    """Reports sent to storage at the same time."""
    execution_extension: ExecutionExtensionConfig = attrs.field(factory=ExecutionExtensionConfig)
    rpc: RpcSettingsConfig = attrs.field(factory=RpcSettingsConfig)
    log_format: LogFormat = LogFormat.JSON
    security: SecurityConfig = attrs.field(factory=SecurityConfig)
    """Spider-py: TLS on the EM's connections and the cluster credential it presents; in the
    embedded cluster, also how storage and the scheduler serve (docs/security.md). Off by
    default."""
    advertised_host: str | None = None
    """The address the EM registers with storage (``spider status`` lists it): an IP address,
    or a name resolved at start. Default: the address this machine reaches storage from (the
    embedded cluster: its host)."""
    metrics: MetricsConfig | None = None
    """Spider-py: Prometheus metrics and health endpoints over HTTP. ``None`` (no block) means
    off for an EM on its own, and on for the embedded cluster (``EMBEDDED_METRICS``)."""

    def metrics_config(self, *, embedded: bool) -> MetricsConfig:
        """Where to serve the metrics: the file's block, else the mode's default."""
        if self.metrics is not None:
            return self.metrics
        return EMBEDDED_METRICS if embedded else MetricsConfig()

    def runtime_settings(self) -> RuntimeSettings:
        """The runtime's knobs."""
        return RuntimeSettings(
            scheduler_poll_wait_ms=self.scheduler_poll_wait_ms,
            storage_heartbeat_interval=self.liveness.storage_heartbeat_interval_sec,
            scheduler_heartbeat_interval=self.liveness.scheduler_heartbeat_interval_sec,
            shutdown_drain=self.shutdown_drain_sec,
            shutdown_rpc_bound=self.rpc.shutdown_bound_sec,
            max_pending_reports=self.max_pending_reports,
            report_senders=self.report_senders,
            retry=self.rpc.retry.policy(),
            extension=self.execution_extension.settings(),
            on_declared_dead=self.on_declared_dead,
            ip_address=self.advertised_host or PLACEHOLDER_IP,
        )

    def client_deadlines(self) -> ClientDeadlines:
        """Per-RPC deadlines."""
        return ClientDeadlines(
            call=self.rpc.deadline_sec,
            next_task_margin=self.rpc.next_task_margin_sec,
            shutdown=self.rpc.shutdown_deadline_sec,
        )

    def pool_config(self) -> PoolConfig:
        """The process pool's configuration."""
        executor = self.task_executor
        return PoolConfig(
            package_dir=executor.package_dir,
            executors=self.executors,
            bin_path=executor.bin_path,
            inherited_env=executor.inherited_env,
            max_log_line_bytes=executor.max_log_line_bytes,
            max_frame_bytes=executor.max_frame_bytes,
            recycle_after_tasks=executor.recycle_after_tasks,
            memory_limit_bytes=(
                None if executor.memory_limit_mb is None else executor.memory_limit_mb * _MIB
            ),
            warm_spare=executor.warm_spare,
        )


def endpoint_data(text: str, *, source: str) -> dict[str, Any]:
    """``host:port`` as the ``{host, port}`` mapping of the file."""
    try:
        endpoint = Endpoint.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return {"host": endpoint.host, "port": endpoint.port}


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The dotted-key overrides ``SPIDER_EM_*`` variables set (unknown ones are an error)."""
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = ENV_OVERRIDES.get(name)
        if key is None:
            known = ", ".join(sorted(ENV_OVERRIDES))
            raise ConfigError(f"unknown environment variable {name}; the known ones are {known}")
        overrides[key] = _env_value(key, value, name)
    return overrides


def _env_value(key: str, value: str, name: str) -> Any:
    if key in ("storage", "scheduler"):
        return endpoint_data(value, source=f"environment variable {name}")
    if key in ("executors", "embedded.storage_port", "embedded.scheduler_port", "metrics.port"):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"environment variable {name}: {value!r} is not an integer") from None
    if key == "task_executor.package_dir":
        try:
            return [str(directory) for directory in decode_package_dir(value)]
        except ValueError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
    if key == "shutdown_grace_sec":
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"environment variable {name}: {value!r} is not a number") from None
    return value


def load_em_config(
    path: Path | None,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> ExecutionManagerConfig:
    """The configuration from ``path`` (optional), ``SPIDER_EM_*`` variables and ``overrides``
    (dotted keys, highest precedence). Raises ``ConfigError`` naming every bad key."""
    data = read_config_file(path) if path is not None else {}
    layered = merge_overrides(data, environment_overrides(environ))
    layered = merge_overrides(layered, overrides or {})
    source = f"configuration file {path}" if path is not None else "configuration"
    return structure_config(layered, ExecutionManagerConfig, source=source)
