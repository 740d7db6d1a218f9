"""One executor of the pool: the process handle, its stderr forwarder, its id; and starting one."""

from __future__ import annotations

import enum
import itertools
import logging
import os
import resource
from typing import Final

import attrs
import trio

from spider.core.retry import FailedAttempt, retry, retry_on, then_cap
from spider.em import metrics
from spider.em.pool._forwarder import StderrForwarder
from spider.em.pool.config import PoolConfig
from spider.em.pool.errors import ExecutorSpawnError
from spider.executor import ExecutorConfig, ExecutorProcess, ExecutorStartError

LOGGER: Final = logging.getLogger("spider.em.pool")

REAP_BOUND: Final = 5.0
"""Seconds to wait for a killed executor to be reaped (it takes microseconds; the bound guards
against a process stuck in uninterruptible sleep)."""

_SPAWN_FAILED: Final = retry_on(ExecutorSpawnError)


class SpawnReason(enum.StrEnum):
    """Why an executor was started (logged with it)."""

    START = "start"
    SPARE = "spare"
    REPLACEMENT = "replacement"


@attrs.define(eq=False)
class PooledExecutor:
    """A running executor with its stderr forwarder, as the pool tracks it."""

    executor_id: int
    process: ExecutorProcess
    forwarder: StderrForwarder
    config: PoolConfig
    tasks_run: int = 0

    @property
    def pid(self) -> int:
        """The executor's process id (also its process group id)."""
        return self.process.pid

    async def close(self) -> None:
        """End the executor: ``Shutdown`` if it is idle and healthy, else kill its group; reap.

        Shielded and bounded, so it is safe in cleanup paths; the forwarder then gets
        ``stderr_drain_grace`` seconds to read what is left.
        """
        with trio.move_on_after(self.config.shutdown_grace + REAP_BOUND, shield=True):
            await self.process.aclose()
        self.forwarder.stop_within(self.config.stderr_drain_grace)

    async def kill(self) -> None:
        """Kill the executor's process group now, then reap it (shielded, bounded)."""
        self.process.kill()
        await self.close()


@attrs.define(eq=False)
class ExecutorSpawner:
    """Starts executors for the pool: numbers them, limits them, and starts their forwarders.

    Forwarders run in ``nursery``, which the pool owns and which outlives every executor.
    """

    config: PoolConfig
    nursery: trio.Nursery
    _ids: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _executor_config: ExecutorConfig = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        env: dict[str, str] = {}
        for name in self.config.inherited_env:
            value = os.environ.get(name)
            if value is None:
                LOGGER.warning(
                    "A variable listed in inherited_env is not set; skipping it.",
                    extra={"env_key": name},
                )
            else:
                env[name] = value
        executor_config = ExecutorConfig(
            package_dir=self.config.package_dir,
            max_frame_bytes=self.config.max_frame_bytes,
            env=env,
            shutdown_grace=self.config.shutdown_grace,
        )
        command = self.config.executor_command()
        if command is not None:
            executor_config = attrs.evolve(executor_config, command=command)
        self._executor_config = executor_config

    async def spawn(self, slot: int, reason: SpawnReason) -> PooledExecutor:
        """Start one executor and its forwarder; raises ``ExecutorSpawnError``."""
        executor_id = next(self._ids)
        try:
            with trio.fail_after(self.config.start_timeout):
                process = await ExecutorProcess.start(self._executor_config)
        except ExecutorStartError as exc:
            raise ExecutorSpawnError(f"executor {executor_id} could not start: {exc}") from exc
        except trio.TooSlowError as exc:
            raise ExecutorSpawnError(
                f"executor {executor_id} was not ready within start_timeout "
                f"({self.config.start_timeout:g} s); check the executor command and the load "
                "on this machine"
            ) from exc
        assert process.stderr is not None  # ExecutorConfig.capture_stderr is on
        forwarder = StderrForwarder(
            stream=process.stderr,
            executor_id=executor_id,
            slot=slot,
            max_line_bytes=self.config.max_log_line_bytes,
            lines_per_second=self.config.log_lines_per_second,
            burst_lines=self.config.log_burst_lines,
        )
        self.nursery.start_soon(forwarder.run, name=f"executor {executor_id} stderr forwarder")
        executor = PooledExecutor(executor_id, process, forwarder, self.config)
        if self.config.memory_limit_bytes is not None:
            try:
                _limit_address_space(process.pid, self.config.memory_limit_bytes)
            except OSError as exc:
                await executor.kill()
                raise ExecutorSpawnError(
                    f"could not set the memory limit of executor {executor_id}: {exc}"
                ) from exc
        metrics.EXECUTOR_STARTS.labels(reason.value).inc()
        LOGGER.info(
            "Executor spawned.",
            extra={
                "executor_id": executor_id,
                "pid": process.pid,
                "slot": slot,
                "reason": reason.value,
            },
        )
        return executor

    async def spawn_until_started(self, slot: int, reason: SpawnReason) -> PooledExecutor:
        """``spawn``, retried after ``respawn_backoff`` delays (then its cap, for as long as it
        takes) until it works or is cancelled."""
        backoff = self.config.respawn_backoff

        def log(failed: FailedAttempt) -> None:
            LOGGER.error(
                "Executor respawn failed; retrying in %.3f s: %s",
                failed.delay,
                failed.error,
                extra={"slot": slot, "retry_in_s": failed.delay, "error": str(failed.error)},
            )

        return await retry(
            lambda: self.spawn(slot, reason),
            delays=lambda: then_cap(backoff),
            rule=_SPAWN_FAILED,
            on_retry=log,
        )


def _limit_address_space(pid: int, limit: int) -> None:
    # Soft and hard: a task cannot raise it back. Children (grandchildren of ours) inherit it.
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
