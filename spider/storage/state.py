"""``StorageState``: one storage process's domain objects, opened and recovered, and the few
operations that are more than a call to one of them.

``open_storage_state`` creates the schema, starts a new session, recovers the job cache
(``recovery.py``) and runs the two GC loops (task-instance sweeps, the job-cache GC), supervised,
around its block. ``spider.storage.server`` serves it::

    async with open_storage_state(config, database) as state, trio.open_nursery() as nursery:
        await nursery.start(serve, storage_services(state), host, port)
        state.lifecycle.resend_ready_work()   # only once serving: a scheduler can poll it now

The services call the domain objects directly: jobs and task instances are ``state.lifecycle``
(``JobLifecycle``), a job-cache GC pass is ``state.collector.collect()``, a sweep is
``instance_gc.sweep_task_instances(state.lifecycle)``. The methods here add something of their
own: request validation (resource groups, scheduler endpoints), password hashing, the session
stamped on registration and poll answers, the bound on ``WaitForJob``, the retention window of
the status snapshot, and the re-enqueueing of all ready work when a scheduler replaces another. They take and return plain domain values and
raise only ``StorageError`` subclasses; the services answer with ``grpc_status(error)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from spider.core.ids import (
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
)
from spider.core.ready_task import ReadyTask
from spider.core.supervision import supervise
from spider.storage.cluster_status import ClusterSnapshot, cluster_status
from spider.storage.config import StorageConfig
from spider.storage.db.interface import StorageDatabase
from spider.storage.errors import BadRequest, InvalidResourceGroup
from spider.storage.inbound_queue import EMPTY_BATCH, NO_BATCH, InboundQueue, Lane
from spider.storage.instance_gc import run_task_instance_gc
from spider.storage.instance_pool import TaskInstancePool
from spider.storage.job_cache import JobCache
from spider.storage.job_cache_gc import TerminatedJobCollector
from spider.storage.job_lifecycle import JobLifecycle, JobOutcome
from spider.storage.liveness import ExecutionManagerLiveness
from spider.storage.outage import DatabaseOutage
from spider.storage.passwords import burn_verification_time, hash_password, verify_password
from spider.storage.persistence import Persistence
from spider.storage.recovery import RecoveryReport, recover
from spider.storage.revocations import RevocationAnswer

LOGGER = logging.getLogger("spider.storage")

MAX_EXTERNAL_ID_CHARS = 256
MAX_PASSWORD_BYTES = 2048
MAX_REVOCATION_WAIT_SEC = 60.0
"""The longest one ``WaitRevokedInstances`` waits, whatever the EM asks."""


@attrs.frozen
class ReadyTaskBatch:
    """A poll's answer: entries of one lane, stamped with the storage session."""

    session_id: SessionId
    tasks: tuple[ReadyTask, ...]


@attrs.frozen
class AcknowledgedReadyTasks:
    """An acknowledged poll's answer: ``ReadyTaskBatch`` plus the batch number to acknowledge
    (``NO_BATCH`` when there are no entries)."""

    session_id: SessionId
    batch: int
    tasks: tuple[ReadyTask, ...]


@attrs.frozen
class ExecutionManagerRegistration:
    """``RegisterExecutionManager``'s answer."""

    execution_manager_id: ExecutionManagerId
    session_id: SessionId


@attrs.frozen
class SchedulerRegistration:
    """``RegisterScheduler``'s answer."""

    scheduler_id: SchedulerId
    session_id: SessionId


@attrs.frozen
class RegisteredScheduler:
    """A registered scheduler, as storage lists it (``GetSchedulers``)."""

    scheduler_id: SchedulerId
    host: str
    port: int


@attrs.define(eq=False)
class StorageState:
    """A storage process's domain objects, and the operations that add checks or state to them."""

    config: StorageConfig
    persistence: Persistence
    lifecycle: JobLifecycle
    collector: TerminatedJobCollector
    recovery: RecoveryReport
    _scheduler_registrations: int = 0

    @classmethod
    async def create(
        cls,
        config: StorageConfig,
        database: StorageDatabase,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = trio.current_time,
        threaded: bool = True,
    ) -> StorageState:
        """Create the schema, start a new session and recover the job cache.

        No background loop runs; ``open_storage_state`` adds them. ``clock`` gives wall-clock
        seconds for the database, ``monotonic`` the seconds of in-memory deadlines; tests pass
        their own, and ``threaded=False`` (see ``Persistence``).
        """
        runtime = config.runtime
        persistence = Persistence(
            database,
            trio.CapacityLimiter(runtime.db_threads),
            threaded,
            DatabaseOutage(clock, monotonic),
        )
        await persistence.create_schema()
        session = await persistence.new_session()
        pool_config = runtime.task_instance_pool
        cache = JobCache()
        lifecycle = JobLifecycle(
            persistence,
            cache,
            InboundQueue.from_config(runtime.inbound_queue),
            TaskInstancePool(pool_config.hard_timeout_grace_sec),
            ExecutionManagerLiveness(
                persistence, clock, pool_config.execution_manager_stale_cutoff_sec
            ),
            session,
            clock,
            monotonic,
            limits=runtime.limits,
        )
        persistence.outage.on_end(lifecycle.pool.postpone)
        collector = TerminatedJobCollector(
            cache, persistence, runtime.job_cache_gc, runtime.db_retention_sec, clock, monotonic
        )
        recovery = await recover(lifecycle)
        LOGGER.info("storage session %s started", session, extra={"session_id": session})
        return cls(config, persistence, lifecycle, collector, recovery)

    @property
    def session(self) -> SessionId:
        """This process's storage session id."""
        return self.lifecycle.session

    # --- Spider-py's JobSubmissionService -------------------------------------------------

    async def wait_for_job(self, job_id: JobId, wait_sec: float) -> JobOutcome:
        """Spider-py's ``WaitForJob``: up to ``wait_sec`` (at most ``max_job_wait_sec``) for the
        job to end; its state, and its outputs or error once it has."""
        wait_sec = min(wait_sec, self.config.runtime.max_job_wait_sec)
        return await self.lifecycle.wait_for_job(job_id, wait_sec)

    # --- Spider-py's InstanceRevocationService --------------------------------------------

    async def wait_revoked_instances(
        self,
        execution_manager_id: ExecutionManagerId,
        session_id: SessionId,
        known_revision: int,
        wait_sec: float,
    ) -> RevocationAnswer:
        """``WaitRevokedInstances``: the EM's revocations after ``known_revision``, waiting up
        to ``wait_sec`` (at most ``MAX_REVOCATION_WAIT_SEC``) for one. A revision from another
        storage session means nothing here: it is read as 0."""
        if session_id != self.session:
            known_revision = 0
        wait_sec = min(wait_sec, MAX_REVOCATION_WAIT_SEC)
        revocations = self.lifecycle.pool.revocations
        return await revocations.wait(execution_manager_id, known_revision, wait_sec)

    # --- InboundQueueService ---------------------------------------------------------------

    async def poll_ready_tasks(self, lane: Lane, max_items: int, wait_ms: int) -> ReadyTaskBatch:
        """``PollReady{,Commit,Cleanup}Tasks``: up to ``max_items`` entries of ``lane``.

        Returns as soon as at least one entry is available (with whatever else is there, up to
        ``max_items``), or empty after ``wait_ms``; ``max_items == 0`` returns at once.
        """
        tasks: list[ReadyTask] = []
        with trio.move_on_after(wait_ms / 1000):
            tasks = await self.lifecycle.queue.receive(lane, max_items)
        return ReadyTaskBatch(self.session, tuple(tasks))

    # --- Spider-py's AcknowledgedInboundQueueService -----------------------------------------

    async def poll_ready_tasks_acknowledged(
        self,
        lane: Lane,
        max_items: int,
        wait_ms: int,
        session_id: SessionId,
        acknowledged_batch: int,
    ) -> AcknowledgedReadyTasks:
        """``PollReadyTasks`` of the extension: ``poll_ready_tasks``, with the lane's last
        answer leased until acknowledged (``InboundQueue.receive_leased``).

        ``acknowledged_batch`` counts only within this storage session: from another session it
        acknowledges nothing. Of an unacknowledged answer only the entries whose task is still
        Ready are offered again, so a task started meanwhile is not dispatched twice.
        """
        if session_id != self.session:
            acknowledged_batch = NO_BATCH
        batch = EMPTY_BATCH
        with trio.move_on_after(wait_ms / 1000):
            batch = await self.lifecycle.queue.receive_leased(
                lane, max_items, acknowledged_batch, self.lifecycle.is_offerable
            )
        return AcknowledgedReadyTasks(self.session, batch.batch, batch.entries)

    # --- ResourceGroupManagementService ----------------------------------------------------

    async def add_resource_group(self, external_id: str, password: bytes) -> ResourceGroupId:
        """``AddResourceGroup``: the password is stored as a salted scrypt hash."""
        if not 0 < len(external_id) <= MAX_EXTERNAL_ID_CHARS:
            raise BadRequest(
                f"external_resource_group_id must be 1 to {MAX_EXTERNAL_ID_CHARS} characters, "
                f"got {len(external_id)}"
            )
        if len(password) > MAX_PASSWORD_BYTES:
            raise BadRequest(
                f"the password is {len(password)} bytes; at most {MAX_PASSWORD_BYTES} are allowed"
            )
        password_hash = await self.persistence.offload(hash_password, password)
        return await self.persistence.add_resource_group(external_id, password_hash)

    async def verify_resource_group(
        self, resource_group_id: ResourceGroupId, password: bytes
    ) -> None:
        """``VerifyResourceGroup``: ``InvalidResourceGroup`` for an unknown group or a wrong
        password, indistinguishably (same message, same cost)."""
        stored = await self.persistence.get_resource_group_password_hash(resource_group_id)
        if stored is None:
            await self.persistence.offload(burn_verification_time, password)
            raise InvalidResourceGroup()
        if not await self.persistence.offload(verify_password, password, stored):
            raise InvalidResourceGroup()

    # --- ExecutionManagerLivenessService ---------------------------------------------------

    async def register_execution_manager(self, ip_address: str) -> ExecutionManagerRegistration:
        """``RegisterExecutionManager``: a new Alive EM; ``BadRequest`` for a bad IP."""
        em_id = await self.lifecycle.liveness.register(ip_address)
        return ExecutionManagerRegistration(em_id, self.session)

    async def update_execution_manager_heartbeat(
        self, execution_manager_id: ExecutionManagerId
    ) -> SessionId:
        """``UpdateExecutionManagerHeartbeat``: ``IllegalEmId`` if unknown, ``EmDead`` if dead."""
        await self.lifecycle.liveness.heartbeat(execution_manager_id)
        return self.session

    # --- SchedulerRegistrationService ------------------------------------------------------

    async def register_scheduler(self, host: str, port: int) -> SchedulerRegistration:
        """``RegisterScheduler``: replaces the previous scheduler.

        A replacement (every registration after the first in this process) gets all ready work
        again, since whatever the previous scheduler had buffered is lost; the first one does
        not, because startup's ``resend_ready_work`` already enqueued it.
        """
        if not host:
            raise BadRequest("the scheduler host is empty")
        if not 0 <= port <= 65535:
            raise BadRequest(f"the scheduler port {port} is outside 0..65535")
        scheduler_id = await self.persistence.register_scheduler(host, port)
        self._scheduler_registrations += 1
        if self._scheduler_registrations > 1:
            # The lanes' leases need no reset: a lease's entries still Ready are enqueued
            # again here, and settling a lease skips entries waiting in the lane.
            offered = self.lifecycle.resend_ready_work()
            LOGGER.info(
                "scheduler %s replaced the previous one; re-enqueued %d ready task(s)",
                scheduler_id,
                offered,
            )
        return SchedulerRegistration(scheduler_id, self.session)

    async def get_schedulers(self) -> list[RegisteredScheduler]:
        """``GetSchedulers`` (upstream answers UNIMPLEMENTED; the data is there, so answer it)."""
        rows = await self.persistence.list_schedulers()
        return [RegisteredScheduler(scheduler_id, host, port) for scheduler_id, host, port in rows]

    # --- Spider-py's ClusterStatusService --------------------------------------------------

    async def cluster_status(self) -> ClusterSnapshot:
        """``GetClusterStatus``: EMs, queue depths, live instances and jobs by state."""
        return await cluster_status(
            self.lifecycle, self.config.runtime.job_cache_gc.terminated_job_retention_sec
        )


@asynccontextmanager
async def open_storage_state(
    config: StorageConfig,
    database: StorageDatabase,
    *,
    clock: Callable[[], float] = time.time,
    threaded: bool = True,
) -> AsyncIterator[StorageState]:
    """A ready ``StorageState`` whose GC loops and retry timer run, supervised, until the block
    exits.

    The caller owns ``database`` (opens and closes it). The loops live in a nursery around the
    block, so an exception leaving the block arrives wrapped in an ``ExceptionGroup``; the
    supervised loops themselves never raise.
    """
    state = await StorageState.create(config, database, clock=clock, threaded=threaded)
    runtime = config.runtime
    async with trio.open_nursery() as nursery:
        await nursery.start(
            supervise,
            "task-instance sweep",
            run_task_instance_gc,
            state.lifecycle,
            runtime.task_instance_pool.gc_interval_sec,
        )
        await nursery.start(supervise, "job cache GC", state.collector.run)
        await nursery.start(
            supervise, "retry timer", state.lifecycle.retry_timer.run, state.lifecycle.offer_retry
        )
        try:
            yield state
        finally:
            nursery.cancel_scope.cancel(reason="storage state closed")
            counters = state.persistence.counters
            LOGGER.info(
                "committed %d transactions for %d writes",
                counters.transactions,
                counters.writes,
                extra={"transactions": counters.transactions, "writes": counters.writes},
            )
