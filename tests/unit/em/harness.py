"""Runs ``run_execution_manager`` against the in-process fakes, for tests under autojump_clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from spider.core.backoff import Backoff
from spider.em._retry import RetryPolicy
from spider.em.errors import ExecutionManagerError
from spider.em.runtime import RuntimeSettings, run_execution_manager
from spider.em.stop import EmStop

from .fakes import FakePool, FakeRevocations, FakeScheduler, FakeStorage, fake_clients

# Without jitter, so that retry times are exact.
TEST_RETRY = RetryPolicy(backoff=Backoff(initial=0.1, cap=1.0, multiplier=2.0))

BOUND = 600.0
"""Virtual seconds any test may take (autojump_clock makes waiting free)."""


def settings(**changes: object) -> RuntimeSettings:
    base = RuntimeSettings(
        scheduler_poll_wait_ms=2000,
        storage_heartbeat_interval=0.1,
        scheduler_heartbeat_interval=0.1,
        shutdown_drain=5.0,
        shutdown_rpc_bound=10.0,
        retry=TEST_RETRY,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


@attrs.define(eq=False)
class Em:
    """One execution manager over fakes; ``running()`` runs it for a block and then stops it."""

    storage: FakeStorage = attrs.field(factory=FakeStorage)
    scheduler: FakeScheduler = attrs.field(factory=FakeScheduler)
    pool: FakePool = attrs.field(factory=FakePool)
    revocations: FakeRevocations | None = None
    """Storage's revocation long poll; ``None``: the EM has no revocation client."""
    settings: RuntimeSettings = attrs.field(factory=settings)
    em_stop: EmStop = attrs.field(factory=lambda: EmStop(grace=10.0, forced_bound=1.0))
    done: trio.Event = attrs.field(factory=trio.Event)
    error: ExecutionManagerError | None = None
    finished_at: float | None = None

    async def run(self) -> None:
        try:
            await run_execution_manager(
                self.settings,
                fake_clients(self.storage, self.scheduler, self.revocations),
                self.pool.open,
                self.em_stop,
            )
        except ExecutionManagerError as error:
            self.error = error
        finally:
            self.finished_at = trio.current_time()
            self.done.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Em]:
        """Run the EM for the block; leaving it requests a stop (unless one was) and waits."""
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.run)
                yield self
                if not self.em_stop.requested:
                    self.em_stop.request("the test is over")
                await self.done.wait()

    async def stop(self) -> None:
        """Request a stop and wait for the runtime to return."""
        self.em_stop.request("SIGTERM (test)")
        await self.done.wait()

    async def wait_polling(self, calls: int = 1) -> None:
        """Wait until the scheduler has seen ``calls`` NextTask calls and one is waiting."""
        await self.scheduler.wait_until(
            lambda: len(self.scheduler.next_task_calls) >= calls and self.scheduler.polling > 0
        )
