"""``Persistence``: the database, called from worker threads, with its errors translated.

Every ``StorageDatabase`` call blocks, so each runs in ``trio.to_thread.run_sync`` under one
``trio.CapacityLimiter`` (``runtime.db_threads``). A thread that has started always runs to
completion: if the caller is cancelled meanwhile, the result still arrives and the caller's next
checkpoint raises ``Cancelled``. Callers rely on that: they apply a write's effect to the cache
synchronously right after the call returns, so the cache never misses a committed write.

Errors become storage errors here and nowhere else: ``DatabaseUnavailable`` is
``StorageUnavailable``, the contract's domain errors become their storage counterparts, and
anything else a backend lets escape is logged and becomes ``StorageInternalError``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import attrs
import trio

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SchedulerId, SessionId
from spider.storage.db import interface as db
from spider.storage.db.interface import (
    ExecutionManagerListing,
    JobRecord,
    JobState,
    JobStatus,
    StorageDatabase,
)
from spider.storage.errors import (
    BadRequest,
    EmDead,
    IllegalEmId,
    InvalidJobState,
    InvalidResourceGroup,
    JobNotFound,
    ResourceGroupExists,
    StorageInternalError,
    StorageUnavailable,
)

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

    async def _call(self, operation: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return await self._run(fn, *args)
        except db.DatabaseUnavailable as exc:
            raise StorageUnavailable(
                f"the storage database is unavailable ({operation}): {exc}; nothing was "
                "changed, retry later"
            ) from exc
        except db.UnknownExecutionManager as exc:
            raise IllegalEmId(_em_id(args)) from exc
        except db.ExecutionManagerDead as exc:
            raise EmDead(_em_id(args)) from exc
        except db.PayloadTooLarge as exc:
            raise BadRequest(f"too large for the database ({operation}): {exc}") from exc
        except db.DuplicateResourceGroup as exc:
            raise ResourceGroupExists(str(args[0])) from exc
        except db.UnknownResourceGroup as exc:
            raise InvalidResourceGroup(f"resource group {args[0]} does not exist") from exc
        except db.JobNotFound as exc:
            raise JobNotFound(JobId(_int_arg(args))) from exc
        except db.IllegalJobTransition as exc:
            raise InvalidJobState(
                exc.job_id,
                exc.current,
                f"the move to {exc.target.value}",
                sorted(db.LEGAL_TRANSITIONS[exc.target], key=_STATE_ORDER.index),
            ) from exc
        except db.DatabaseError as exc:
            raise StorageInternalError(f"database error during {operation}: {exc}") from exc
        except Exception as exc:
            # A backend bug or an untranslated driver error: the request fails, the service
            # keeps going. Logged here because it is the only place that sees the original.
            LOGGER.exception("unexpected error from the database during %s", operation)
            raise StorageInternalError(
                f"unexpected database error during {operation}: {type(exc).__name__}: {exc}"
            ) from exc

    async def create_schema(self) -> None:
        await self._call("create_schema", self.database.create_schema)

    async def new_session(self) -> SessionId:
        return await self._call("new_session", self.database.new_session)

    async def add_resource_group(self, external_id: str, password_hash: bytes) -> ResourceGroupId:
        return await self._call(
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
        insert = functools.partial(self.database.insert_job, started=started)
        return await self._call(
            "insert_job", insert, group_id, compressed_task_graph, compressed_inputs, now
        )

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
    ) -> JobState:
        transition = functools.partial(
            self.database.transition_job,
            serialized_outputs=serialized_outputs,
            error_message=error_message,
        )
        return await self._call(
            f"transition_job to {target.value}", transition, job_id, target, now
        )

    async def recoverable_jobs(self) -> list[JobRecord]:
        def collect() -> list[JobRecord]:
            return list(self.database.iter_recoverable_jobs())

        return await self._call("iter_recoverable_jobs", collect)

    async def delete_terminated_jobs(self, ended_before: float) -> int:
        return await self._call(
            "delete_terminated_jobs", self.database.delete_terminated_jobs, ended_before
        )

    async def record_task_outputs(self, job_id: JobId, task_index: int, frame: bytes) -> None:
        await self._call(
            "record_task_outputs", self.database.record_task_outputs, job_id, task_index, frame
        )

    async def load_task_outputs(self, job_id: JobId) -> dict[int, bytes]:
        return await self._call("load_task_outputs", self.database.load_task_outputs, job_id)

    async def register_execution_manager(self, ip_address: str, now: float) -> ExecutionManagerId:
        return await self._call(
            "register_execution_manager",
            self.database.register_execution_manager,
            ip_address,
            now,
        )

    async def heartbeat_execution_manager(self, em_id: ExecutionManagerId, now: float) -> None:
        await self._call(
            "heartbeat_execution_manager", self.database.heartbeat_execution_manager, em_id, now
        )

    async def is_execution_manager_alive(self, em_id: ExecutionManagerId) -> bool:
        return await self._call(
            "is_execution_manager_alive", self.database.is_execution_manager_alive, em_id
        )

    async def mark_dead_execution_managers(self, stale_before: float) -> list[ExecutionManagerId]:
        return await self._call(
            "mark_dead_execution_managers",
            self.database.mark_dead_execution_managers,
            stale_before,
        )

    async def register_scheduler(self, host: str, port: int) -> SchedulerId:
        return await self._call("register_scheduler", self.database.register_scheduler, host, port)

    async def list_schedulers(self) -> list[tuple[SchedulerId, str, int]]:
        return await self._call("list_schedulers", self.database.list_schedulers)

    async def list_execution_managers(self, dead_limit: int) -> ExecutionManagerListing:
        return await self._call(
            "list_execution_managers", self.database.list_execution_managers, dead_limit
        )

    async def count_jobs_by_state(self) -> dict[JobState, int]:
        return await self._call("count_jobs_by_state", self.database.count_jobs_by_state)


_STATE_ORDER = list(JobState)


def _int_arg(args: tuple[object, ...]) -> int:
    first = args[0] if args else 0
    return first if isinstance(first, int) else 0


def _em_id(args: tuple[object, ...]) -> ExecutionManagerId:
    return ExecutionManagerId(_int_arg(args))
