"""``FakeDatabase``: a dict-backed ``StorageDatabase`` for storage's unit tests.

It follows the contract of ``spider.storage.db.interface`` (legal transitions, first write wins
for task outputs, each dead EM reported once) and adds what tests need: a switch that makes
every call fail with ``DatabaseUnavailable``, one-shot failures of named methods, and call
counts. It is thread-safe, so it also works under ``Persistence``'s worker threads.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Iterator, Sequence

import attrs

from spider.core.bounds import summary_line
from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SchedulerId, SessionId
from spider.core.job_state import JobState
from spider.storage.db.interface import (
    RECOVERABLE_STATES,
    DatabaseUnavailable,
    DuplicateResourceGroup,
    ExecutionManagerDead,
    ExecutionManagerListing,
    ExecutionManagerRecord,
    JobQuery,
    JobRecord,
    JobStatus,
    JobSummary,
    StoredJobTasks,
    UnknownExecutionManager,
    UnknownJob,
    UnknownResourceGroup,
    check_transition,
)
from spider.storage.db.writes import BatchOutcome, Write, write_each


@attrs.define
class _EmRow:
    ip_address: str
    alive: bool
    last_heartbeat_at: float


@attrs.define(eq=False)
class FakeDatabase:
    """An in-memory database with failure injection."""

    jobs: dict[JobId, JobRecord] = attrs.field(factory=dict)
    task_outputs: dict[JobId, dict[int, bytes]] = attrs.field(factory=dict)
    task_records: dict[JobId, bytes] = attrs.field(factory=dict)
    groups: dict[ResourceGroupId, tuple[str, bytes]] = attrs.field(factory=dict)
    ems: dict[ExecutionManagerId, _EmRow] = attrs.field(factory=dict)
    schedulers: list[tuple[SchedulerId, str, int]] = attrs.field(factory=list)
    sessions: int = 0
    unavailable: bool = False
    """While True, every call raises ``DatabaseUnavailable``."""
    fail_once: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """``fail_once["record_task_outputs"] = 2`` fails the next two calls of that method."""
    broken: set[str] = attrs.field(factory=set)
    """Methods that raise ``RuntimeError``, as a backend bug would."""
    calls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    _ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.unavailable:
            raise DatabaseUnavailable(f"{method}: connection refused (injected)")
        if method in self.broken:
            raise RuntimeError("driver bug (injected)")
        if self.fail_once[method] > 0:
            self.fail_once[method] -= 1
            raise DatabaseUnavailable(f"{method}: connection reset (injected)")

    def create_schema(self) -> None:
        with self._lock:
            self._enter("create_schema")

    def close(self) -> None:
        pass

    def write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        # One "transaction" per write: the fake has no shared transactions to offer, and its
        # per-method failure injection keeps working for batched writes.
        self.calls["write_batch"] += 1
        return write_each(self, writes)

    def new_session(self) -> SessionId:
        with self._lock:
            self._enter("new_session")
            self.sessions += 1
            return SessionId(self.sessions)

    def add_resource_group(self, external_id: str, password_hash: bytes) -> ResourceGroupId:
        with self._lock:
            self._enter("add_resource_group")
            if any(name == external_id for name, _ in self.groups.values()):
                raise DuplicateResourceGroup(external_id)
            group_id = ResourceGroupId(next(self._ids))
            self.groups[group_id] = (external_id, password_hash)
            return group_id

    def get_resource_group_password_hash(self, group_id: ResourceGroupId) -> bytes | None:
        with self._lock:
            self._enter("get_resource_group_password_hash")
            row = self.groups.get(group_id)
            return None if row is None else row[1]

    def insert_job(
        self,
        group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        now: float,
        *,
        started: bool = False,
    ) -> JobId:
        with self._lock:
            self._enter("insert_job")
            if group_id not in self.groups:
                raise UnknownResourceGroup(group_id)
            job_id = JobId(next(self._ids))
            self.jobs[job_id] = JobRecord(
                job_id,
                group_id,
                JobState.RUNNING if started else JobState.READY,
                compressed_task_graph,
                compressed_inputs,
                None,
                None,
                now,
                None,
            )
            return job_id

    def _job(self, job_id: JobId) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise UnknownJob(job_id)
        return record

    def get_job_status(self, job_id: JobId) -> JobStatus:
        with self._lock:
            self._enter("get_job_status")
            record = self._job(job_id)
            return JobStatus(
                record.id, record.state, record.error_message, record.resource_group_id
            )

    def get_job_outputs(self, job_id: JobId) -> tuple[JobState, bytes | None]:
        with self._lock:
            self._enter("get_job_outputs")
            record = self._job(job_id)
            return record.state, record.serialized_outputs

    def transition_job(
        self,
        job_id: JobId,
        target: JobState,
        now: float,
        *,
        serialized_outputs: bytes | None = None,
        error_message: str | None = None,
        task_records: bytes | None = None,
    ) -> JobState:
        with self._lock:
            self._enter("transition_job")
            record = self._job(job_id)
            check_transition(job_id, record.state, target)
            self.jobs[job_id] = attrs.evolve(
                record,
                state=target,
                serialized_outputs=serialized_outputs
                if serialized_outputs is not None
                else record.serialized_outputs,
                error_message=error_message if error_message is not None else record.error_message,
                ended_at=now if target.is_terminal else record.ended_at,
            )
            if task_records is not None:
                self.task_records.setdefault(job_id, task_records)
            return record.state

    def iter_recoverable_jobs(self) -> Iterator[JobRecord]:
        with self._lock:
            self._enter("iter_recoverable_jobs")
            rows = [self.jobs[key] for key in sorted(self.jobs)]
        return iter([row for row in rows if row.state in RECOVERABLE_STATES])

    def delete_terminated_jobs(self, ended_before: float, batch: int = 1000) -> int:
        with self._lock:
            self._enter("delete_terminated_jobs")
            doomed = [
                job_id
                for job_id, record in self.jobs.items()
                if record.state.is_terminal
                and record.ended_at is not None
                and record.ended_at < ended_before
            ]
            for job_id in doomed:
                del self.jobs[job_id]
                self.task_outputs.pop(job_id, None)
                self.task_records.pop(job_id, None)
            return len(doomed)

    def record_task_outputs(self, job_id: JobId, task_index: int, output_frame: bytes) -> None:
        with self._lock:
            self._enter("record_task_outputs")
            self._job(job_id)
            self.task_outputs.setdefault(job_id, {}).setdefault(task_index, output_frame)

    def load_task_outputs(self, job_id: JobId) -> dict[int, bytes]:
        with self._lock:
            self._enter("load_task_outputs")
            return dict(self.task_outputs.get(job_id, {}))

    def get_job_tasks(self, job_id: JobId) -> StoredJobTasks:
        with self._lock:
            self._enter("get_job_tasks")
            record = self._job(job_id)
            return StoredJobTasks(
                record.state, record.compressed_task_graph, self.task_records.get(job_id)
            )

    def register_execution_manager(self, ip_address: str, now: float) -> ExecutionManagerId:
        with self._lock:
            self._enter("register_execution_manager")
            em_id = ExecutionManagerId(next(self._ids))
            self.ems[em_id] = _EmRow(ip_address, True, now)
            return em_id

    def _em(self, em_id: ExecutionManagerId) -> _EmRow:
        row = self.ems.get(em_id)
        if row is None:
            raise UnknownExecutionManager(em_id)
        return row

    def heartbeat_execution_manager(self, em_id: ExecutionManagerId, now: float) -> None:
        with self._lock:
            self._enter("heartbeat_execution_manager")
            row = self._em(em_id)
            if not row.alive:
                raise ExecutionManagerDead(em_id)
            row.last_heartbeat_at = now

    def is_execution_manager_alive(self, em_id: ExecutionManagerId) -> bool:
        with self._lock:
            self._enter("is_execution_manager_alive")
            return self._em(em_id).alive

    def mark_dead_execution_managers(self, stale_before: float) -> list[ExecutionManagerId]:
        with self._lock:
            self._enter("mark_dead_execution_managers")
            dead = []
            for em_id, row in sorted(self.ems.items()):
                if row.alive and row.last_heartbeat_at < stale_before:
                    row.alive = False
                    dead.append(em_id)
            return dead

    def list_execution_managers(self, dead_limit: int) -> ExecutionManagerListing:
        with self._lock:
            self._enter("list_execution_managers")
            records = [
                ExecutionManagerRecord(em_id, row.ip_address, row.alive, row.last_heartbeat_at)
                for em_id, row in sorted(self.ems.items())
            ]
            alive = [r for r in records if r.alive]
            dead = sorted(
                (r for r in records if not r.alive),
                key=lambda r: (r.last_heartbeat_at, r.id),
                reverse=True,
            )
            return ExecutionManagerListing(tuple(alive + dead[:dead_limit]), len(dead))

    def register_scheduler(self, host: str, port: int) -> SchedulerId:
        with self._lock:
            self._enter("register_scheduler")
            scheduler_id = SchedulerId(next(self._ids))
            self.schedulers = [(scheduler_id, host, port)]
            return scheduler_id

    def list_schedulers(self) -> list[tuple[SchedulerId, str, int]]:
        with self._lock:
            self._enter("list_schedulers")
            return list(self.schedulers)

    def count_jobs_by_state(self) -> dict[JobState, int]:
        with self._lock:
            self._enter("count_jobs_by_state")
            return dict(collections.Counter(record.state for record in self.jobs.values()))

    def list_jobs(self, query: JobQuery) -> list[JobSummary]:
        with self._lock:
            self._enter("list_jobs")
            matching = [
                record
                for record in self.jobs.values()
                if (not query.states or record.state in query.states)
                and query.resource_group_id in (None, record.resource_group_id)
                and (query.created_after is None or record.created_at >= query.created_after)
                and (query.created_before is None or record.created_at < query.created_before)
                and (query.below_id is None or record.id < query.below_id)
            ]
            matching.sort(key=lambda record: record.id, reverse=True)
            return [
                JobSummary(
                    record.id,
                    record.state,
                    record.resource_group_id,
                    record.created_at,
                    record.ended_at or record.created_at,
                    record.ended_at,
                    summary_line(record.error_message),
                )
                for record in matching[: query.limit]
            ]

    # --- test helpers ---

    def state_of(self, job_id: JobId) -> JobState:
        """The stored state of a job (no failure injection)."""
        return self.jobs[job_id].state
