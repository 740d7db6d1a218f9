"""A Spider-py cluster of separate processes on loopback: storage, a scheduler and two EMs.

Ports are chosen once, so a restarted storage or scheduler comes back where the others look for
it. Timeouts are short (dead-EM cutoffs of a few seconds, sub-second heartbeats and polls), so
that fault recovery takes seconds, not the production minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from spider.storage.db import DatabaseConfig
from tests.e2e.storage.storage_process import database_yaml
from tests.mariadb_server import free_tcp_port

from .service_process import ServiceProcess, spawn

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "packages"
EM_COUNT = 2

# Storage declares an EM dead after this silence; EMs heartbeat every EM_HEARTBEAT_SEC. The
# margin is wide because the machine is shared: a falsely dead EM registers again, and the
# tests that assume no EM did would be checking something else.
STORAGE_EM_CUTOFF_SEC = 4.0
EM_HEARTBEAT_SEC = 0.3
SCHEDULER_EM_CUTOFF_SEC = 2.0

STORAGE_READY = "storage listening on"
SCHEDULER_READY = "scheduler listening on"
EM_READY = "Execution manager registered with storage."


@attrs.frozen
class Placement:
    """Where each service listens, where the others reach it, and what launches it.

    The default is everything on loopback in this network namespace; the network-fault suite
    (tests/e2e/network) puts each service in a namespace of its own, where a service may listen
    on the namespace's loopback behind a relay that owns the namespace's address.
    """

    storage_listen: str = "127.0.0.1"
    storage_address: str = "127.0.0.1"
    scheduler_listen: str = "127.0.0.1"
    scheduler_address: str = "127.0.0.1"
    launchers: Mapping[str, Sequence[str]] = attrs.field(factory=dict)
    """A command prefix per service name (``storage``, ``scheduler``, ``em-0``...)."""
    em_env: Mapping[str, str] = attrs.field(factory=dict)
    """Extra environment of the EMs (e.g. ``SPIDER_LOG_LEVEL``)."""

    def launcher(self, name: str) -> Sequence[str]:
        return self.launchers.get(name, ())


def _write_yaml(
    path: Path,
    data: dict[str, Any],
    security: dict[str, Any] | None,
    metrics_port: int | None = None,
) -> Path:
    if security is not None:
        data = {**data, "security": security}
    if metrics_port is not None:
        data = {**data, "metrics": {"port": metrics_port}}
    path.write_text(yaml.safe_dump(data))
    return path


@attrs.define(eq=False)
class Cluster:
    """The processes and what the tests observe of them; ``state_dir`` is the examples'
    ``SPIDER_EXAMPLES_STATE_DIR`` (journal, markers, attempt counters)."""

    directory: Path
    database: DatabaseConfig
    task_delay_ms: int
    hard_timeout_grace_sec: float | None = None
    """Storage's grace after a task's hard timeout, if not the default."""
    package_dir: Path = EXAMPLES
    """The EMs' ``task_executor.package_dir``."""
    em_count: int = EM_COUNT
    placement: Placement = attrs.field(factory=Placement)
    security: dict[str, Any] | None = None
    """Every service's ``security`` block (TLS, the cluster credential), if not the default."""
    metrics_ports: Mapping[str, int] | None = None
    """Each service's metrics port (by name: ``storage``, ``scheduler``, ``em-0``...), if they
    serve metrics."""
    storage_port: int = attrs.field(factory=free_tcp_port)
    scheduler_port: int = attrs.field(factory=free_tcp_port)
    storage: ServiceProcess | None = None
    scheduler: ServiceProcess | None = None
    ems: list[ServiceProcess | None] = attrs.field(
        default=attrs.Factory(lambda self: [None] * self.em_count, takes_self=True)
    )
    exited: list[ServiceProcess] = attrs.field(factory=list)

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    def start(self) -> None:
        """Start every process and wait until each serves (EMs: registered with storage)."""
        self.state_dir.mkdir(exist_ok=True)
        self.start_storage()
        self.start_scheduler()
        for index in range(self.em_count):
            self.start_em(index)

    def _metrics_port(self, name: str) -> int | None:
        return None if self.metrics_ports is None else self.metrics_ports.get(name)

    def _storage_endpoint(self) -> dict[str, Any]:
        return {"host": self.placement.storage_address, "port": self.storage_port}

    def start_storage(self) -> None:
        pool: dict[str, float] = {
            "execution_manager_stale_cutoff_sec": STORAGE_EM_CUTOFF_SEC,
            "gc_interval_sec": 0.5,
        }
        if self.hard_timeout_grace_sec is not None:
            pool["hard_timeout_grace_sec"] = self.hard_timeout_grace_sec
        config = _write_yaml(
            self.directory / "storage.yaml",
            {
                "host": self.placement.storage_listen,
                "port": self.storage_port,
                "runtime": {"db": database_yaml(self.database), "task_instance_pool": pool},
            },
            self.security,
            self._metrics_port("storage"),
        )
        self.storage = spawn(
            "storage",
            "spider.storage",
            "--config",
            str(config),
            ready_text=STORAGE_READY,
            launcher=self.placement.launcher("storage"),
        )
        self.storage.wait_ready()

    def start_scheduler(self) -> None:
        config = _write_yaml(
            self.directory / "scheduler.yaml",
            {
                "host": self.placement.scheduler_listen,
                "port": self.scheduler_port,
                "storage_endpoint": self._storage_endpoint(),
                "runtime": {
                    "advertised_endpoint": {
                        "host": self.placement.scheduler_address,
                        "port": self.scheduler_port,
                    },
                    "em_registry": {
                        "dead_em_cutoff_sec": SCHEDULER_EM_CUTOFF_SEC,
                        "liveness_tracking_interval_ms": 200,
                    },
                    "scheduler": {"config": {"storage_poll_timeout_ms": 200}},
                    "storage_call_deadline_sec": 5,
                    "storage_reconnect": {"initial_sec": 0.1, "cap_sec": 0.5, "jitter_sec": 0.05},
                },
            },
            self.security,
            self._metrics_port("scheduler"),
        )
        self.scheduler = spawn(
            "scheduler",
            "spider.scheduler",
            "--config",
            str(config),
            ready_text=SCHEDULER_READY,
            launcher=self.placement.launcher("scheduler"),
        )
        self.scheduler.wait_ready()

    def start_em(self, index: int) -> None:
        config = _write_yaml(
            self.directory / f"em-{index}.yaml",
            {
                "storage": self._storage_endpoint(),
                "scheduler": {
                    "host": self.placement.scheduler_address,
                    "port": self.scheduler_port,
                },
                "task_executor": {"package_dir": str(self.package_dir)},
                "liveness": {
                    "storage_heartbeat_interval_sec": EM_HEARTBEAT_SEC,
                    "scheduler_heartbeat_interval_sec": EM_HEARTBEAT_SEC,
                },
                "scheduler_poll_wait_ms": 200,
                "shutdown_grace_sec": 1,
                "shutdown_drain_sec": 1,
                "rpc": {"deadline_sec": 5, "retry": {"cap_sec": 0.5}},
            },
            self.security,
            self._metrics_port(f"em-{index}"),
        )
        em = spawn(
            f"em-{index}",
            "spider.em",
            "--config",
            str(config),
            ready_text=EM_READY,
            env={
                "SPIDER_EXAMPLES_STATE_DIR": str(self.state_dir),
                "SPIDER_EXAMPLES_TASK_DELAY_MS": str(self.task_delay_ms),
                **self.placement.em_env,
            },
            launcher=self.placement.launcher(f"em-{index}"),
        )
        self.ems[index] = em
        em.wait_ready()

    def kill_em(self, index: int) -> None:
        """SIGKILL an EM and its executors."""
        em = self.ems[index]
        assert em is not None
        em.kill()
        self.exited.append(em)
        self.ems[index] = None

    def stop_em(self, index: int) -> int:
        """SIGTERM an EM; its exit status."""
        em = self.ems[index]
        assert em is not None
        self.ems[index] = None
        self.exited.append(em)
        return em.stop()

    def kill_storage(self) -> None:
        assert self.storage is not None
        self.storage.kill()
        self.exited.append(self.storage)
        self.storage = None

    def restart_scheduler(self) -> None:
        """SIGKILL the scheduler (it holds no durable state) and start a new one."""
        assert self.scheduler is not None
        self.scheduler.kill()
        self.exited.append(self.scheduler)
        self.start_scheduler()

    def running(self) -> list[ServiceProcess]:
        services = [self.storage, self.scheduler, *self.ems]
        return [service for service in services if service is not None]

    def check_alive(self) -> None:
        """Fail, with its log, if a process that should run has exited."""
        for service in self.running():
            status = service.process.poll()
            if status is not None:
                raise AssertionError(f"{service.name} exited with {status}:\n{service.log()}")

    def stop(self) -> dict[str, int]:
        """Stop EMs, then the scheduler, then storage (SIGTERM); their exit statuses."""
        statuses: dict[str, int] = {}
        for service in reversed(self.running()):
            statuses[service.name] = service.stop()
        return statuses
