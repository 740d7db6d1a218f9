"""``Persistence``: the database, called from worker threads, with its errors translated.

Every ``StorageDatabase`` call blocks, so each runs in ``trio.to_thread.run_sync`` under one
``trio.CapacityLimiter`` (``runtime.db_threads``). A thread that has started always runs to
completion: if the caller is cancelled meanwhile, the result still arrives and the caller's next
checkpoint raises ``Cancelled``. Callers rely on that: they apply a write's effect to the cache
synchronously right after the call returns, so the cache never misses a committed write.

The hot-path writes (job registration, job transitions, task outputs, EM registration and
heartbeats) go through ``GroupCommit``: concurrent ones share one transaction and one fsync,
and each is answered only once its transaction committed. ``counters`` counts the commits and
the writes they carried, for every write this class makes.

Errors become storage errors here and nowhere else: ``DatabaseUnavailable`` is
``StorageUnavailable``, the contract's domain errors become their storage counterparts, and
anything else a backend lets escape is logged and becomes ``StorageInternalError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import attrs
import trio

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SchedulerId, SessionId
from spider.core.job_state import JobState
from spider.storage.db import interface as db
from spider.storage.db.interface import (
    ExecutionManagerListing,
    JobQuery,
    JobRecord,
    JobStatus,
    JobSummary,
    StorageDatabase,
    StoredJobTasks,
)
from spider.storage.db.writes import (
    BatchOutcome,
    HeartbeatExecutionManager,
    InsertJob,
    RecordTaskOutputs,
    RegisterExecutionManager,
    TransitionJob,
    Write,
)
from spider.storage.errors import (
    BadRequest,
    EmDead,
    IllegalEmId,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    ResourceGroupExists,
    StorageError,
    StorageInternalError,
    StorageUnavailable,
)
from spider.storage.group_commit import CommitCounters, GroupCommit
from spider.storage.outage import DatabaseOutage

LOGGER = logging.getLogger("spider.storage.persistence")

T = TypeVar("T")


@attrs.define(eq=False)
class Persistence:
    """Async, translated access to a ``StorageDatabase``."""

    database: StorageDatabase
    limiter: trio.CapacityLimiter
    threaded: bool = True
    """Run calls in worker threads. ``False`` runs them inline after a checkpoint, for tests under
    Trio's mock clock, which would otherwise jump ahead while a worker thread runs."""
    outage: DatabaseOutage = attrs.field(factory=DatabaseOutage)
    """Every call's availability is recorded here (docs/storage.md#database-outages)."""
    _group: GroupCommit = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._group = GroupCommit(self._write_batch)

    @property
    def counters(self) -> CommitCounters:
        """Committed transactions and the writes they carried (group commit and the rest)."""
        return self._group.counters

    async def offload(self, fn: Callable[..., T], *args: object) -> T:
        """Run CPU-heavy work (graph decoding, password hashing) away from the Trio loop."""
        if not self.threaded:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if not self.threaded:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def _write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        return await self._run(self.database.write_batch, writes)

    async def _commit(self, operation: str, write: Write, subject: int) -> object:
        """``write`` through the group commit, with its errors translated like ``_call``'s."""
        try:
            result = await self._group.commit(write)
        except Exception as exc:
            raise self._translate(operation, exc, (subject,), write=True) from exc
        # Group-committed writes always write rows: one succeeding ends an outage.
        self.outage.succeeded(write=True)
        return result

    async def _write(self, operation: str, fn: Callable[..., T], *args: object) -> T:
        """A write outside the group commit (one transaction), counted.

        These may write nothing (a sweep that finds no stale EM), so their success does not end
        an outage: a full SQLite disk still lets a write that changes no page commit.
        """
        try:
            result = await self._run(fn, *args)
        except Exception as exc:
            raise self._translate(operation, exc, args, write=True) from exc
        self._group.counters.add(1, 1)
        return result

    async def _call(self, operation: str, fn: Callable[..., T], *args: object) -> T:
        """A read."""
        try:
            result = await self._run(fn, *args)
        except Exception as exc:
            raise self._translate(operation, exc, args, write=False) from exc
        self.outage.succeeded(write=False)
        return result

    def _translate(
        self, operation: str, exc: Exception, args: tuple[object, ...], *, write: bool
    ) -> StorageError:
        error = _storage_error(operation, exc, args)
        if isinstance(error, StorageUnavailable):
            self.outage.failed(str(exc), write=write)
        return error

    async def create_schema(self) -> None:
        await self._call("create_schema", self.database.create_schema)

    async def new_session(self) -> SessionId:
        return await self._write("new_session", self.database.new_session)

    async def add_resource_group(self, external_id: str, password_hash: bytes) -> ResourceGroupId:
        return await self._write(
            "add_resource_group", self.database.add_resource_group, external_id, password_hash
        )

    async def get_resource_group_password_hash(self, group_id: ResourceGroupId) -> bytes | None:
        return await self._call(
            "get_resource_group_password_hash",
            self.database.get_resource_group_password_hash,
            group_id,
        )

    async def insert_job(
        self,
        group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        now: float,
        *,
        started: bool = False,
    ) -> JobId:
        write = InsertJob(group_id, compressed_task_graph, compressed_inputs, now, started=started)
        return cast(JobId, await self._commit("insert_job", write, group_id))

    async def get_job_status(self, job_id: JobId) -> JobStatus:
        return await self._call("get_job_status", self.database.get_job_status, job_id)

    async def get_job_outputs(self, job_id: JobId) -> tuple[JobState, bytes | None]:
        return await self._call("get_job_outputs", self.database.get_job_outputs, job_id)

    async def transition_job(
        self,
        job_id: JobId,
        target: JobState,
        now: float,
        *,
        serialized_outputs: bytes | None = None,
        error_message: str | None = None,
        task_records: bytes | None = None,
    ) -> JobState:
        write = TransitionJob(job_id, target, now, serialized_outputs, error_message, task_records)
        return cast(
            JobState, await self._commit(f"transition_job to {target.value}", write, job_id)
        )

    async def recoverable_jobs(self) -> list[JobRecord]:
        def collect() -> list[JobRecord]:
            return list(self.database.iter_recoverable_jobs())

        return await self._call("iter_recoverable_jobs", collect)

    async def delete_terminated_jobs(self, ended_before: float) -> int:
        return await self._write(
            "delete_terminated_jobs", self.database.delete_terminated_jobs, ended_before
        )

    async def record_task_outputs(self, job_id: JobId, task_index: int, frame: bytes) -> None:
        write = RecordTaskOutputs(job_id, task_index, frame)
        await self._commit("record_task_outputs", write, job_id)

    async def load_task_outputs(self, job_id: JobId) -> dict[int, bytes]:
        return await self._call("load_task_outputs", self.database.load_task_outputs, job_id)

    async def get_job_tasks(self, job_id: JobId) -> StoredJobTasks:
        return await self._call("get_job_tasks", self.database.get_job_tasks, job_id)

    async def register_execution_manager(self, ip_address: str, now: float) -> ExecutionManagerId:
        write = RegisterExecutionManager(ip_address, now)
        return cast(ExecutionManagerId, await self._commit("register_execution_manager", write, 0))

    async def heartbeat_execution_manager(self, em_id: ExecutionManagerId, now: float) -> None:
        write = HeartbeatExecutionManager(em_id, now)
        await self._commit("heartbeat_execution_manager", write, em_id)

    async def is_execution_manager_alive(self, em_id: ExecutionManagerId) -> bool:
        return await self._call(
            "is_execution_manager_alive", self.database.is_execution_manager_alive, em_id
        )

    async def mark_dead_execution_managers(self, stale_before: float) -> list[ExecutionManagerId]:
        return await self._write(
            "mark_dead_execution_managers",
            self.database.mark_dead_execution_managers,
            stale_before,
        )

    async def register_scheduler(self, host: str, port: int) -> SchedulerId:
        return await self._write("register_scheduler", self.database.register_scheduler, host, port)

    async def list_schedulers(self) -> list[tuple[SchedulerId, str, int]]:
        return await self._call("list_schedulers", self.database.list_schedulers)

    async def list_execution_managers(self, dead_limit: int) -> ExecutionManagerListing:
        return await self._call(
            "list_execution_managers", self.database.list_execution_managers, dead_limit
        )

    async def count_jobs_by_state(self) -> dict[JobState, int]:
        return await self._call("count_jobs_by_state", self.database.count_jobs_by_state)

    async def list_jobs(self, query: JobQuery) -> list[JobSummary]:
        return await self._call("list_jobs", self.database.list_jobs, query)


_STATE_ORDER = list(JobState)


def _storage_error(operation: str, exc: Exception, args: tuple[object, ...]) -> StorageError:
    """The storage error for a database call's error (``args``: the call's, for ids)."""
    if isinstance(exc, db.DatabaseUnavailable):
        return StorageUnavailable(
            f"the storage database is unavailable ({operation}): {exc}; nothing was "
            "changed, retry later"
        )
    if isinstance(exc, db.UnknownExecutionManager):
        return IllegalEmId(_em_id(args))
    if isinstance(exc, db.ExecutionManagerDead):
        return EmDead(_em_id(args))
    if isinstance(exc, db.PayloadTooLarge):
        return BadRequest(f"too large for the database ({operation}): {exc}")
    if isinstance(exc, db.DuplicateResourceGroup):
        return ResourceGroupExists(str(args[0]))
    if isinstance(exc, db.UnknownResourceGroup):
        return InvalidResourceGroup(f"resource group {args[0]} does not exist")
    if isinstance(exc, db.UnknownJob):
        return JobNotFound(JobId(_int_arg(args)))
    if isinstance(exc, db.IllegalJobTransition):
        return InvalidJobState(
            exc.job_id,
            exc.current,
            f"the move to {exc.target.value}",
            sorted(db.LEGAL_TRANSITIONS[exc.target], key=_STATE_ORDER.index),
        )
    if isinstance(exc, db.DatabaseError):
        return StorageInternalError(f"database error during {operation}: {exc}")
    # A backend bug or an untranslated driver error: the request fails, the service keeps
    # going. Logged here because it is the only place that sees the original.
    LOGGER.error("unexpected error from the database during %s", operation, exc_info=exc)
    return StorageInternalError(
        f"unexpected database error during {operation}: {type(exc).__name__}: {exc}"
    )


def _int_arg(args: tuple[object, ...]) -> int:
    first = args[0] if args else 0
    return first if isinstance(first, int) else 0


def _em_id(args: tuple[object, ...]) -> ExecutionManagerId:
    return ExecutionManagerId(_int_arg(args))
