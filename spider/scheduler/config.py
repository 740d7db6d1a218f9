"""The scheduler's configuration: Spider's YAML keys, every one with a default, plus additions.

::

    host: 127.0.0.1                 # Spider: 0.0.0.0; Spider-py listens on loopback by default
    port: 50052                     # 0 = any free port
    connection_pool_size: 4         # connections to storage
    storage_endpoint: {host: 127.0.0.1, port: 50051}
    runtime:
      advertised_endpoint: null     # sent to storage; default: host (loopback for 0.0.0.0/::)
                                    # and the bound port
      stop_timeout_sec: 30          # accepted for Spider's files; stopping is cancellation
      em_registry:
        dead_em_cutoff_sec: 30
        liveness_tracking_interval_ms: 1000
      scheduler:
        policy: round_robin
        config:
          active_job_queue_capacity: 16
          dispatch_queue_capacity: 16
          ready_task_capacity: 1048576
          commit_ready_task_capacity: 256
          cleanup_ready_task_capacity: 256
          storage_poll_timeout_ms: 1000   # Spider's deployments: 10 (see docs/scheduler.md)
          tick_interval_ms: 5
          storage_poll_page_size: 512     # Spider-py: most entries asked for per lane poll
          finalizing_job_expiration_timeout_sec: 300
      storage_call_deadline_sec: 10       # Spider-py additions from here on
      storage_reconnect: {initial_sec: 0.1, cap_sec: 5, jitter_sec: 0.1}
    security:                       # off by default (docs/security.md)
      tls: {cert: scheduler.pem, key: scheduler.key, ca: ca.pem, require_client_cert: false}
      cluster_token_file: /etc/spider/cluster-token   # presented to storage, required of EMs
    metrics: {host: 127.0.0.1, port: 9465}   # /metrics, /healthz, /readyz; off by default

Unknown keys are an error naming the key (Spider ignores them, except in ``scheduler:``).
docs/scheduler.md, "Configuration", is the reference.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Any

import attrs

from spider.core.backoff import Backoff
from spider.core.config import merge_overrides, read_config_file, structure_config
from spider.observability import MetricsConfig
from spider.rpc import Endpoint, EndpointConfig, SecurityConfig


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (_is_number(value) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (_is_number(value) and value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _non_empty(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _port(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 65535:
            raise ValueError(
                f"{attribute.name} must be an integer from {minimum} to 65535, got {value!r}"
            )

    return check


@attrs.frozen
class EmRegistryConfig:
    """When an execution manager counts as dead."""

    dead_em_cutoff_sec: float = attrs.field(default=30.0, validator=_positive)
    """An EM not heard from (heartbeat, assignment, acknowledgement) for this long is removed
    and its unacknowledged assignments are rescheduled."""
    liveness_tracking_interval_ms: float = attrs.field(default=1000.0, validator=_positive)
    """How often EMs are checked against the cutoff."""


class Policy(enum.StrEnum):
    """Placement policies; Spider has only one that is finished."""

    ROUND_ROBIN = "round_robin"


@attrs.frozen
class RoundRobinConfig:
    """Capacities and timing of the round-robin core."""

    active_job_queue_capacity: int = attrs.field(default=16, validator=_positive_int)
    """Jobs served in rotation at once; later jobs wait until one is retired. Also the most
    commit tasks dispatched per pass."""
    dispatch_queue_capacity: int = attrs.field(default=16, validator=_positive_int)
    """Assignments decided ahead of ``NextTask`` calls."""
    ready_task_capacity: int = attrs.field(default=1_048_576, validator=_positive_int)
    """Buffered regular tasks above which the task lane is not polled."""
    commit_ready_task_capacity: int = attrs.field(default=256, validator=_positive_int)
    cleanup_ready_task_capacity: int = attrs.field(default=256, validator=_positive_int)
    storage_poll_timeout_ms: float = attrs.field(default=1000.0, validator=_non_negative)
    """How long each lane poll may wait at storage for an entry. Spider-py's storage answers
    as soon as one entry is there, so a long wait costs no latency and saves idle polls."""
    tick_interval_ms: float = attrs.field(default=5.0, validator=_positive)
    """Least time between two placement rounds, and between two polls of one lane (a poll
    whose page came back full is followed at once by the next)."""
    storage_poll_page_size: int = attrs.field(default=512, validator=_positive_int)
    """Spider-py's: the most entries one lane poll asks for. Upstream asks for all the room in
    its buffers (up to ``ready_task_capacity``), so a large job arrives as one message that
    blocks the event loop while it decodes; pages keep each answer small, and the lane polls
    again at once while pages come back full."""
    finalizing_job_expiration_timeout_sec: float = attrs.field(default=300.0, validator=_positive)
    """How long a committing or cleaning-up job's regular tasks are dropped."""


@attrs.frozen
class PolicyConfig:
    """``{policy, config}``: the placement policy and its settings."""

    policy: Policy = Policy.ROUND_ROBIN
    config: RoundRobinConfig = attrs.field(factory=RoundRobinConfig)


@attrs.frozen
class ReconnectConfig:
    """Backoff between attempts to reach storage again after a failed call."""

    initial_sec: float = attrs.field(default=0.1, validator=_positive)
    cap_sec: float = attrs.field(default=5.0, validator=_positive)
    jitter_sec: float = attrs.field(default=0.1, validator=_non_negative)

    def backoff(self) -> Backoff:
        """As a ``Backoff`` (unlimited attempts: storage is worth waiting for)."""
        return Backoff(
            initial=self.initial_sec,
            cap=max(self.cap_sec, self.initial_sec),
            jitter=self.jitter_sec,
        )


@attrs.frozen
class SchedulerRuntimeConfig:
    """The scheduler's ``runtime`` block: Spider's keys, plus Spider-py's storage-call settings."""

    advertised_endpoint: EndpointConfig | None = None
    """What the scheduler registers with storage; ``None`` derives it from ``host`` and the
    bound port."""
    stop_timeout_sec: float = attrs.field(default=30.0, validator=_positive)
    em_registry: EmRegistryConfig = attrs.field(factory=EmRegistryConfig)
    scheduler: PolicyConfig = attrs.field(factory=PolicyConfig)
    storage_call_deadline_sec: float = attrs.field(default=10.0, validator=_positive)
    """Deadline of each call to storage (a lane poll gets its wait on top)."""
    storage_reconnect: ReconnectConfig = attrs.field(factory=ReconnectConfig)


@attrs.frozen
class SchedulerConfig:
    """The whole scheduler configuration.

    For an in-process scheduler on any free loopback port::

        SchedulerConfig(host="127.0.0.1", port=0,
                        storage_endpoint=EndpointConfig("127.0.0.1", storage_port))
    """

    host: str = attrs.field(default="127.0.0.1", validator=_non_empty)
    port: int = attrs.field(default=50052, validator=_port(0))
    connection_pool_size: int = attrs.field(default=4, validator=_positive_int)
    storage_endpoint: EndpointConfig = attrs.field(
        factory=lambda: EndpointConfig("127.0.0.1", 50051)
    )
    runtime: SchedulerRuntimeConfig = attrs.field(factory=SchedulerRuntimeConfig)
    security: SecurityConfig = attrs.field(factory=SecurityConfig)
    """Spider-py: TLS on its server and its connections to storage, and the cluster credential
    it presents to storage and requires of EMs (docs/security.md); off by default."""
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    """Spider-py: Prometheus metrics and health endpoints over HTTP; off by default."""

    @property
    def round_robin(self) -> RoundRobinConfig:
        """The placement settings."""
        return self.runtime.scheduler.config

    def advertised_endpoint(self, bound_port: int) -> Endpoint:
        """What to register with storage once serving on ``bound_port``."""
        advertised = self.runtime.advertised_endpoint
        if advertised is not None:
            return advertised.endpoint()
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "[::]") else self.host
        return Endpoint(host, bound_port)


def load_scheduler_config(
    path: Path | None, overrides: dict[str, Any] | None = None
) -> SchedulerConfig:
    """The file's configuration (or the defaults) with dotted-key ``overrides`` on top."""
    data = read_config_file(path) if path is not None else {}
    source = f"configuration file {path}" if path is not None else "configuration"
    return structure_config(merge_overrides(data, overrides or {}), SchedulerConfig, source=source)
