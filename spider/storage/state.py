"""``StorageState``: the storage service's domain, one method per RPC, plus its background loops.

Synopsis (what ``spider.storage.__main__`` and the gRPC layer do)::

    async with open_storage_state(config, database) as state:   # schema, session, recovery, GC
        async with serve(handlers_for(state)):                   # the gRPC layer
            state.resend_ready_work()                            # only once serving (see below)
            await trio.sleep_forever()

Methods take and return plain domain values (ids, bytes, ``JobState``, attrs records) and raise
only ``StorageError`` subclasses for anything a request can cause; the gRPC layer answers with
``grpc_status(error)`` and ``str(error)``. ``resend_ready_work`` must run after the server
serves: the recovered jobs' ready work is only useful once a scheduler can poll it.
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
    TaskInstanceId,
)
from spider.core.supervision import supervise
from spider.core.task_id import TaskId
from spider.storage.cluster_status import ClusterStatus, cluster_status
from spider.storage.config import StorageConfig
from spider.storage.db.interface import JobState, StorageDatabase
from spider.storage.errors import BadRequest, InvalidResourceGroup
from spider.storage.inbound_queue import InboundQueue, Lane, ReadyTask
from spider.storage.instance_gc import SweepReport, run_task_instance_gc, sweep_task_instances
from spider.storage.instance_pool import TaskInstancePool
from spider.storage.job_cache import JobCache
from spider.storage.job_cache_gc import TerminatedJobCollector
from spider.storage.job_lifecycle import ExecutionContext, JobLifecycle
from spider.storage.liveness import ExecutionManagerLiveness
from spider.storage.passwords import burn_verification_time, hash_password, verify_password
from spider.storage.persistence import Persistence
from spider.storage.recovery import RecoveryReport, recover

LOGGER = logging.getLogger("spider.storage")

MAX_EXTERNAL_ID_CHARS = 256
MAX_PASSWORD_BYTES = 2048


@attrs.frozen
class ReadyTaskBatch:
    """A poll's answer: entries of one lane, stamped with the storage session."""

    session_id: SessionId
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
class SchedulerInfo:
    """A registered scheduler (``GetSchedulers``)."""

    scheduler_id: SchedulerId
    host: str
    port: int


@attrs.define(eq=False)
class StorageState:
    """Everything a storage process knows, behind one method per RPC."""

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
        persistence = Persistence(database, trio.CapacityLimiter(runtime.db_threads), threaded)
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
        )
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

    def get_session(self) -> SessionId:
        """``GetSession``."""
        return self.lifecycle.session

    # --- JobOrchestrationService -----------------------------------------------------------

    async def register_job(
        self,
        resource_group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
    ) -> JobId:
        """``RegisterJob``: validate, store as Ready, cache. ``InvalidResourceGroup`` if unknown."""
        return await self.lifecycle.register_job(
            resource_group_id, compressed_task_graph, compressed_inputs
        )

    async def start_job(self, job_id: JobId) -> JobState:
        """``StartJob``: Ready -> Running; ``InvalidJobState`` from any other state."""
        return await self.lifecycle.start_job(job_id)

    async def cancel_job(self, job_id: JobId) -> JobState:
        """``CancelJob``: the state after cancelling (see ``JobLifecycle.cancel_job``)."""
        return await self.lifecycle.cancel_job(job_id)

    async def get_job_state(self, job_id: JobId) -> JobState:
        """``GetJobState``."""
        return await self.lifecycle.get_job_state(job_id)

    async def get_job_outputs(self, job_id: JobId) -> bytes:
        """``GetJobOutputs``: ``SerializedTaskOutputs``; ``InvalidJobState`` unless Succeeded."""
        return await self.lifecycle.get_job_outputs(job_id)

    async def get_job_error(self, job_id: JobId) -> str:
        """``GetJobError``: the failure message; ``InvalidJobState`` unless Failed."""
        return await self.lifecycle.get_job_error(job_id)

    # --- TaskInstanceManagementService -----------------------------------------------------

    async def register_task_instance(
        self,
        job_id: JobId,
        task_id: TaskId,
        execution_manager_id: ExecutionManagerId,
        session_id: SessionId,
    ) -> ExecutionContext:
        """``RegisterTaskInstance``."""
        return await self.lifecycle.register_task_instance(
            job_id, task_id, execution_manager_id, session_id
        )

    async def report_task_success(
        self,
        job_id: JobId,
        task_id: TaskId,
        task_instance_id: TaskInstanceId,
        execution_manager_id: ExecutionManagerId,
        session_id: SessionId,
        serialized_outputs: bytes,
    ) -> None:
        """``ReportTaskSuccess``. The EM id is not checked, as upstream: the instance id is."""
        await self.lifecycle.report_task_success(
            job_id, task_id, task_instance_id, session_id, serialized_outputs
        )

    async def report_task_failure(
        self,
        job_id: JobId,
        task_id: TaskId,
        task_instance_id: TaskInstanceId,
        execution_manager_id: ExecutionManagerId,
        session_id: SessionId,
        error_message: str,
    ) -> None:
        """``ReportTaskFailure``. The EM id is not checked, as upstream: the instance id is."""
        await self.lifecycle.report_task_failure(
            job_id, task_id, task_instance_id, session_id, error_message
        )

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
            offered = self.resend_ready_work()
            LOGGER.info(
                "scheduler %s replaced the previous one; re-enqueued %d ready task(s)",
                scheduler_id,
                offered,
            )
        return SchedulerRegistration(scheduler_id, self.session)

    async def get_schedulers(self) -> list[SchedulerInfo]:
        """``GetSchedulers`` (upstream answers UNIMPLEMENTED; the data is there, so answer it)."""
        rows = await self.persistence.list_schedulers()
        return [SchedulerInfo(scheduler_id, host, port) for scheduler_id, host, port in rows]

    # --- Spider-py's ClusterStatusService --------------------------------------------------

    async def cluster_status(self) -> ClusterStatus:
        """``GetClusterStatus``: EMs, queue depths, live instances and jobs by state."""
        return await cluster_status(
            self.lifecycle, self.config.runtime.job_cache_gc.terminated_job_retention_sec
        )

    # --- maintenance -----------------------------------------------------------------------

    def resend_ready_work(self) -> int:
        """Enqueue every ready task of every cached job; return how many were offered."""
        return self.lifecycle.resend_ready_work()

    async def sweep_task_instances(self) -> SweepReport:
        """One task-instance sweep now (the GC loop runs one every interval)."""
        return await sweep_task_instances(self.lifecycle)

    async def collect_terminated_jobs(self) -> tuple[list[JobId], int]:
        """One job-cache GC pass now: evicted job ids and deleted database rows."""
        return await self.collector.collect()


@asynccontextmanager
async def open_storage_state(
    config: StorageConfig,
    database: StorageDatabase,
    *,
    clock: Callable[[], float] = time.time,
    threaded: bool = True,
) -> AsyncIterator[StorageState]:
    """A ready ``StorageState`` whose GC loops run, supervised, until the block exits.

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
