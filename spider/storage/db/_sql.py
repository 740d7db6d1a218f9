"""Every ``StorageDatabase`` operation, written once in SQLAlchemy Core for both backends.

A backend supplies the engine, reads its driver's errors (``translate_error``) and provides the
one statement SQL has no portable spelling for (insert unless the key exists). Transactions are
short, one per method, except ``write_batch``, which runs many hot-path writes in one transaction
with a savepoint around each (group commit); rows a read-modify-write depends on are locked with ``SELECT ... FOR
UPDATE`` (MariaDB/MySQL, at READ COMMITTED) or by taking SQLite's single write lock up front
(``BEGIN IMMEDIATE``, so no transaction ever has to upgrade a read lock and deadlock).
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ParamSpec, TypeVar

import outcome
import sqlalchemy as sa
import sqlalchemy.exc

from spider.core.bounds import SUMMARY_CHARS, summary_line
from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SchedulerId, SessionId
from spider.core.job_state import JobState
from spider.storage.db import _schema as schema
from spider.storage.db._compiled import CompiledStatements
from spider.storage.db._schema import LivenessState
from spider.storage.db.interface import (
    RECOVERABLE_STATES,
    DatabaseError,
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
    chunks,
)
from spider.storage.db.writes import (
    BatchOutcome,
    HeartbeatExecutionManager,
    InsertJob,
    RecordTaskOutputs,
    RegisterExecutionManager,
    TransitionJob,
    Write,
    write_each,
)

P = ParamSpec("P")
R = TypeVar("R")

WRITES_OPTION = "spider_writes"
"""Execution option set on every connection: whether its transaction will write."""

_CONFLICT_ATTEMPTS = 5
_LOCK_CHUNK = 1000
_RECOVERY_PAGE = 16
_TERMINAL_STATES = tuple(state for state in JobState if state.is_terminal)


class ForeignKeyViolation(DatabaseError):
    """A row referred to a parent row that does not exist (translated by each operation)."""


class DuplicateKey(DatabaseError):
    """A unique key already exists (translated by each operation)."""


class TransactionConflict(DatabaseUnavailable):
    """A deadlock or lock-wait timeout: the transaction was rolled back and may simply rerun."""


class _CommitFailed(Exception):
    """The COMMIT of a shared transaction failed: whether it took effect is unknown."""

    def __init__(self, error: DatabaseError) -> None:
        super().__init__(str(error))
        self.error = error


def _rerun_on_conflict(operation: Callable[P, R]) -> Callable[P, R]:
    """Rerun a whole one-transaction operation that lost a deadlock (it was rolled back)."""

    @functools.wraps(operation)
    def rerunning(*args: P.args, **kwargs: P.kwargs) -> R:
        for _ in range(_CONFLICT_ATTEMPTS - 1):
            try:
                return operation(*args, **kwargs)
            except TransactionConflict:
                continue
        return operation(*args, **kwargs)

    return rerunning


def _job_record(row: sa.Row[Any]) -> JobRecord:
    return JobRecord(
        id=JobId(row.id),
        resource_group_id=ResourceGroupId(row.resource_group_id),
        state=row.state,
        compressed_task_graph=row.compressed_serialized_task_graph,
        compressed_inputs=row.compressed_serialized_job_inputs,
        serialized_outputs=row.serialized_job_outputs,
        error_message=row.error_message,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )


def _original_driver_error(
    exc: sqlalchemy.exc.DBAPIError, driver_error: type[Exception]
) -> sqlalchemy.exc.DBAPIError:
    """The driver error that started it all.

    When a statement breaks the connection (MariaDB drops it after an oversized packet), the
    rollback fails too, and its "server has gone away" hides the informative first error. Only
    the chain of driver and socket errors is followed, never into an error the caller was
    already handling.
    """
    original = exc
    context = exc.__context__
    while isinstance(context, sqlalchemy.exc.DBAPIError | driver_error | OSError):
        if isinstance(context, sqlalchemy.exc.DBAPIError):
            original = context
        context = context.__context__
    return original


def _insert_row(conn: sa.Connection, table: sa.Table, **values: object) -> int:
    """Insert one row; its new id (the driver's last-insert id, no RETURNING)."""
    key = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert key is not None, "an INSERT of one row has an inserted primary key"
    return int(key[0])


def _bound_insert(table: sa.Table, values: Mapping[str, object]) -> sa.ClauseElement:
    """An INSERT into ``table`` of the columns ``values`` names, each a bound parameter."""
    return table.insert().values({name: sa.bindparam(name) for name in values})


def _lock_job_state() -> sa.ClauseElement:
    jobs = schema.jobs
    return sa.select(jobs.c.state).where(jobs.c.id == sa.bindparam("job_id")).with_for_update()


def _update_job(columns: tuple[str, ...]) -> sa.ClauseElement:
    """An UPDATE of one job's ``columns``, each a bound parameter of its own name."""
    jobs = schema.jobs
    return (
        jobs.update()
        .where(jobs.c.id == sa.bindparam("job_id"))
        .values({name: sa.bindparam(name) for name in columns})
    )


@contextmanager
def _savepoint(conn: sa.Connection) -> Iterator[None]:
    """The block under a savepoint: rolled back to it if the block raises, released if not.

    Written as driver SQL rather than ``begin_nested()``, which costs about 0.1 ms of CPU per
    savepoint statement; a batch of writes takes two per write. One name serves every write:
    they run one after the other, and both SQLite and MariaDB let a name be used again.
    """
    conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        raise
    conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")


_SAVEPOINT = "spider_write"


def _job_not_found(job_id: JobId) -> UnknownJob:
    return UnknownJob(
        f"job {job_id} does not exist: it was never registered, or was deleted after its "
        "retention period"
    )


def _unknown_execution_manager(em_id: ExecutionManagerId) -> UnknownExecutionManager:
    return UnknownExecutionManager(
        f"execution manager {em_id} is not registered: register it before heartbeating"
    )


class SqlDatabase(abc.ABC):
    """The ``StorageDatabase`` operations over a SQLAlchemy engine; see ``interface.py``."""

    def __init__(self, engine: sa.Engine, description: str) -> None:
        self._engine = engine
        self._description = description
        self._statements = CompiledStatements(engine.dialect)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._description}>"

    @abc.abstractmethod
    def translate_error(self, exc: sqlalchemy.exc.DBAPIError) -> DatabaseError:
        """The domain error for a driver error raised inside an operation."""

    @abc.abstractmethod
    def insert_unless_present(self, table: sa.Table) -> sa.Insert:
        """An INSERT into ``table`` that does nothing if the primary key exists.

        Only duplicate keys may be ignored: a foreign-key violation must still raise.
        """

    def _insert_once(self, table: sa.Table) -> Callable[[], sa.ClauseElement]:
        """Builds ``insert_unless_present(table)`` with a bound parameter per column."""

        def build() -> sa.ClauseElement:
            columns = [column.name for column in table.columns]
            return self.insert_unless_present(table).values(
                {name: sa.bindparam(name) for name in columns}
            )

        return build

    def writer_turn(self) -> AbstractContextManager[None]:
        """Held around every transaction that writes; by default nothing (the server locks rows)."""
        return nullcontext()

    def _insert(self, table: sa.Table, **values: object) -> int:
        """Insert one row in its own transaction; its new id."""
        with self._transaction(writes=True) as conn:
            return _insert_row(conn, table, **values)

    @contextmanager
    def _translating(self) -> Iterator[None]:
        """Driver errors raised inside become domain errors (``translate_error``)."""
        try:
            yield
        except sqlalchemy.exc.DBAPIError as exc:
            driver_error = self._engine.dialect.loaded_dbapi.Error
            raise self.translate_error(_original_driver_error(exc, driver_error)) from exc

    @contextmanager
    def _transaction(self, *, writes: bool) -> Iterator[sa.Connection]:
        """One transaction on a pooled connection, with driver errors translated."""
        failed: DatabaseError | None = None
        try:
            with (
                self._translating(),
                self.writer_turn() if writes else nullcontext(),
                self._engine.connect() as conn,
            ):
                conn.execution_options(**{WRITES_OPTION: writes})
                with conn.begin():
                    try:
                        yield conn
                    except DatabaseError as exc:
                        failed = exc
                        raise
        except DatabaseError as exc:
            if failed is None or exc is failed:
                raise
            # The body failed (already translated), then so did the rollback, as when MariaDB
            # drops the connection after an oversized packet: the body's error says what
            # happened, the rollback's ("server has gone away") would hide it.
            raise failed from None
        except sqlalchemy.exc.TimeoutError as exc:
            raise DatabaseUnavailable(
                f"{self._description}: every pooled connection stayed busy too long; "
                "retry later, or raise max_connections"
            ) from exc

    # --- schema ---

    def create_schema(self) -> None:
        """Create missing tables and indexes (idempotent) and check the schema version."""
        with self._transaction(writes=True) as conn:
            schema.metadata.create_all(conn, checkfirst=True)
            version = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version)))
            found = version.scalar_one_or_none()
            if found is None:
                conn.execute(schema.schema_version.insert().values(version=schema.SCHEMA_VERSION))
            elif found > schema.SCHEMA_VERSION:
                raise DatabaseError(
                    f"{self._description} has schema version {found}, newer than the "
                    f"{schema.SCHEMA_VERSION} this Spider-py understands: upgrade Spider-py"
                )

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # --- group commit ---

    def write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        """Every write in one transaction, each under its own savepoint; one COMMIT (one fsync).

        A write that fails on its own (unknown job, illegal transition, a constraint) is rolled
        back to its savepoint and gets its error; the others go on. If the shared transaction
        itself breaks before COMMIT (a deadlock, a lost connection, a savepoint that cannot be
        rolled back), the database rolled all of it back, so each write is run again alone, in
        its own transaction, and only the writes that fail alone fail. If the COMMIT fails, its
        outcome is unknown: every write fails with that error, as a single write's would.
        """
        if len(writes) > 1:
            try:
                return self._write_together(writes)
            except _CommitFailed as failed:
                return BatchOutcome(tuple(outcome.Error(failed.error) for _ in writes), 0)
            except DatabaseError:
                pass  # rolled back as a whole: each write runs alone below
        return write_each(self, writes)

    def _write_together(self, writes: Sequence[Write]) -> BatchOutcome:
        outcomes: list[outcome.Outcome[object]] = []
        committing = False
        try:
            with self._transaction(writes=True) as conn:
                for write in writes:
                    try:
                        with _savepoint(conn):
                            outcomes.append(outcome.Value(self._apply(conn, write)))
                    except (sqlalchemy.exc.DBAPIError, DatabaseUnavailable):
                        # Untranslated means the savepoint itself failed; unavailable means
                        # the transaction is gone. Either way the batch is over.
                        raise
                    except Exception as exc:  # this write's own failure; rolled back alone
                        outcomes.append(outcome.Error(exc))
                committing = True
        except DatabaseError as exc:
            if committing:
                raise _CommitFailed(exc) from exc
            raise
        written = sum(isinstance(result, outcome.Value) for result in outcomes)
        return BatchOutcome(tuple(outcomes), 1 if written else 0)

    def _apply(self, conn: sa.Connection, write: Write) -> object:
        match write:
            case InsertJob():
                return self._insert_job_in(
                    conn,
                    write.group_id,
                    write.compressed_task_graph,
                    write.compressed_inputs,
                    write.now,
                    started=write.started,
                )
            case TransitionJob():
                return self._transition_job_in(
                    conn,
                    write.job_id,
                    write.target,
                    write.now,
                    write.serialized_outputs,
                    write.error_message,
                    write.task_records,
                )
            case RecordTaskOutputs():
                self._record_task_outputs_in(
                    conn, write.job_id, write.task_index, write.output_frame
                )
                return None
            case RegisterExecutionManager():
                return self._register_execution_manager_in(conn, write.ip_address, write.now)
            case HeartbeatExecutionManager():
                self._heartbeat_execution_manager_in(conn, write.em_id, write.now)
                return None

    # --- sessions ---

    @_rerun_on_conflict
    def new_session(self) -> SessionId:
        """Insert a sessions row; its id is this storage process's session."""
        return SessionId(self._insert(schema.sessions))

    # --- resource groups ---

    @_rerun_on_conflict
    def add_resource_group(self, external_id: str, password_hash: bytes) -> ResourceGroupId:
        """Insert a resource group. Raises ``DuplicateResourceGroup``."""
        try:
            group_id = self._insert(
                schema.resource_groups, external_id=external_id, password=password_hash
            )
        except DuplicateKey as exc:
            raise DuplicateResourceGroup(
                f"resource group {external_id!r} already exists: choose another external id"
            ) from exc
        return ResourceGroupId(group_id)

    def get_resource_group_password_hash(self, group_id: ResourceGroupId) -> bytes | None:
        """The stored password hash; ``None`` when the group does not exist."""
        groups = schema.resource_groups
        with self._transaction(writes=False) as conn:
            found: bytes | None = conn.execute(
                sa.select(groups.c.password).where(groups.c.id == group_id)
            ).scalar_one_or_none()
        return found

    # --- jobs ---

    @_rerun_on_conflict
    def insert_job(
        self,
        group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        now: float,
        *,
        started: bool = False,
    ) -> JobId:
        """Insert a Ready (or, if ``started``, Running) job. Raises ``UnknownResourceGroup``."""
        with self._transaction(writes=True) as conn:
            return self._insert_job_in(
                conn, group_id, compressed_task_graph, compressed_inputs, now, started=started
            )

    def _insert_job_in(
        self,
        conn: sa.Connection,
        group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        now: float,
        *,
        started: bool = False,
    ) -> JobId:
        values = {
            "resource_group_id": group_id,
            "state": JobState.RUNNING if started else JobState.READY,
            "compressed_serialized_task_graph": compressed_task_graph,
            "compressed_serialized_job_inputs": compressed_inputs,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._translating():
                inserted = self._statements.execute(
                    conn,
                    "insert_job",
                    functools.partial(_bound_insert, schema.jobs, values),
                    values,
                )
        except ForeignKeyViolation as exc:
            raise UnknownResourceGroup(
                f"resource group {group_id} does not exist: add it before submitting jobs to it"
            ) from exc
        assert inserted.lastrowid, "an INSERT of one row has a last-insert id"
        return JobId(inserted.lastrowid)

    def get_job_status(self, job_id: JobId) -> JobStatus:
        """The job's state and error message. Raises ``UnknownJob``."""
        jobs = schema.jobs
        row = self._job_row(job_id, jobs.c.state, jobs.c.error_message, jobs.c.resource_group_id)
        return JobStatus(
            id=job_id,
            state=row.state,
            error_message=row.error_message,
            resource_group_id=ResourceGroupId(row.resource_group_id),
        )

    def get_job_outputs(self, job_id: JobId) -> tuple[JobState, bytes | None]:
        """The state and the stored ``SerializedTaskOutputs``. Raises ``UnknownJob``."""
        jobs = schema.jobs
        row = self._job_row(job_id, jobs.c.state, jobs.c.serialized_job_outputs)
        return row.state, row.serialized_job_outputs

    def _job_row(self, job_id: JobId, *columns: sa.Column[Any]) -> sa.Row[Any]:
        with self._transaction(writes=False) as conn:
            row = conn.execute(sa.select(*columns).where(schema.jobs.c.id == job_id)).one_or_none()
        if row is None:
            raise _job_not_found(job_id)
        return row

    @_rerun_on_conflict
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
        """Lock the row, check ``LEGAL_TRANSITIONS``, update; return the previous state."""
        with self._transaction(writes=True) as conn:
            return self._transition_job_in(
                conn, job_id, target, now, serialized_outputs, error_message, task_records
            )

    def _transition_job_in(
        self,
        conn: sa.Connection,
        job_id: JobId,
        target: JobState,
        now: float,
        serialized_outputs: bytes | None,
        error_message: str | None,
        task_records: bytes | None,
    ) -> JobState:
        changes: dict[str, object] = {"state": target, "updated_at": now}
        if target.is_terminal:
            changes["ended_at"] = now
        if serialized_outputs is not None:
            changes["serialized_job_outputs"] = serialized_outputs
        if error_message is not None:
            changes["error_message"] = error_message
        with self._translating():
            found: str | None = self._statements.execute(
                conn, "lock_job_state", _lock_job_state, {"job_id": job_id}
            ).scalar_one_or_none()
            if found is None:
                raise _job_not_found(job_id)
            current = JobState(found)
            check_transition(job_id, current, target)
            self._statements.execute(
                conn,
                ("update_job", *changes),
                functools.partial(_update_job, tuple(changes)),
                {**changes, "job_id": job_id},
            )
            if task_records is not None:
                records = {"job_id": job_id, "records": task_records}
                self._statements.execute(
                    conn, "insert_task_records", self._insert_once(schema.task_records), records
                )
        return current

    def iter_recoverable_jobs(self) -> Iterator[JobRecord]:
        """Every job in ``RECOVERABLE_STATES``, ordered by id.

        Reads a page of rows per transaction, so neither a connection nor every blob is held
        while the caller works through them.
        """
        jobs = schema.jobs
        query = (
            sa.select(jobs)
            .where(jobs.c.state.in_(RECOVERABLE_STATES))
            .order_by(jobs.c.id)
            .limit(_RECOVERY_PAGE)
        )
        after = 0
        while True:
            with self._transaction(writes=False) as conn:
                rows = conn.execute(query.where(jobs.c.id > after)).all()
            yield from map(_job_record, rows)
            if len(rows) < _RECOVERY_PAGE:
                return
            after = rows[-1].id

    def delete_terminated_jobs(self, ended_before: float, batch: int = 1000) -> int:
        """Delete terminal jobs (their task outputs cascade) that ended before ``ended_before``.

        Each batch is its own transaction, so a large backlog never holds locks for long.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        deleted = 0
        while True:
            count = self._delete_terminated_batch(ended_before, batch)
            deleted += count
            if count < batch:
                return deleted

    @_rerun_on_conflict
    def _delete_terminated_batch(self, ended_before: float, batch: int) -> int:
        jobs = schema.jobs
        with self._transaction(writes=True) as conn:
            ids = (
                conn.execute(
                    sa.select(jobs.c.id)
                    .where(jobs.c.ended_at < ended_before, jobs.c.state.in_(_TERMINAL_STATES))
                    .order_by(jobs.c.id)
                    .limit(batch)
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0
            return conn.execute(sa.delete(jobs).where(jobs.c.id.in_(ids))).rowcount

    # --- finished task outputs ---

    @_rerun_on_conflict
    def record_task_outputs(self, job_id: JobId, task_index: int, output_frame: bytes) -> None:
        """Persist a finished task's output frame; the first write wins. Raises ``UnknownJob``."""
        with self._transaction(writes=True) as conn:
            self._record_task_outputs_in(conn, job_id, task_index, output_frame)

    def _record_task_outputs_in(
        self, conn: sa.Connection, job_id: JobId, task_index: int, output_frame: bytes
    ) -> None:
        try:
            with self._translating():
                self._statements.execute(
                    conn,
                    "insert_task_outputs",
                    self._insert_once(schema.task_outputs),
                    {"job_id": job_id, "task_index": task_index, "output_frame": output_frame},
                )
        except ForeignKeyViolation as exc:
            raise _job_not_found(job_id) from exc

    def load_task_outputs(self, job_id: JobId) -> dict[int, bytes]:
        """Every persisted output frame of a job, by task index. Raises ``UnknownJob``."""
        outputs = schema.task_outputs
        jobs = schema.jobs
        with self._transaction(writes=False) as conn:
            rows = conn.execute(
                sa.select(outputs.c.task_index, outputs.c.output_frame).where(
                    outputs.c.job_id == job_id
                )
            ).all()
            if (
                not rows
                and not conn.execute(sa.select(jobs.c.id).where(jobs.c.id == job_id)).first()
            ):
                raise _job_not_found(job_id)
        return {row.task_index: row.output_frame for row in rows}

    def get_job_tasks(self, job_id: JobId) -> StoredJobTasks:
        """The job's state, graph and task records. Raises ``UnknownJob``."""
        jobs = schema.jobs
        records = schema.task_records
        with self._transaction(writes=False) as conn:
            row = conn.execute(
                sa.select(jobs.c.state, jobs.c.compressed_serialized_task_graph, records.c.records)
                .select_from(jobs.outerjoin(records, records.c.job_id == jobs.c.id))
                .where(jobs.c.id == job_id)
            ).one_or_none()
        if row is None:
            raise _job_not_found(job_id)
        return StoredJobTasks(row.state, row.compressed_serialized_task_graph, row.records)

    # --- execution managers ---

    @_rerun_on_conflict
    def register_execution_manager(self, ip_address: str, now: float) -> ExecutionManagerId:
        """Insert an Alive EM with ``last_heartbeat_at = now``."""
        with self._transaction(writes=True) as conn:
            return self._register_execution_manager_in(conn, ip_address, now)

    def _register_execution_manager_in(
        self, conn: sa.Connection, ip_address: str, now: float
    ) -> ExecutionManagerId:
        with self._translating():
            em_id = _insert_row(
                conn,
                schema.execution_managers,
                ip_address=ip_address,
                state=LivenessState.ALIVE,
                last_heartbeat_at=now,
                created_at=now,
            )
        return ExecutionManagerId(em_id)

    @_rerun_on_conflict
    def heartbeat_execution_manager(self, em_id: ExecutionManagerId, now: float) -> None:
        """Refresh an Alive EM's heartbeat.

        Raises ``UnknownExecutionManager`` or ``ExecutionManagerDead``.
        """
        with self._transaction(writes=True) as conn:
            self._heartbeat_execution_manager_in(conn, em_id, now)

    def _heartbeat_execution_manager_in(
        self, conn: sa.Connection, em_id: ExecutionManagerId, now: float
    ) -> None:
        ems = schema.execution_managers
        with self._translating():
            state = conn.execute(
                sa.select(ems.c.state).where(ems.c.id == em_id).with_for_update()
            ).scalar_one_or_none()
            if state is None:
                raise _unknown_execution_manager(em_id)
            if state is LivenessState.DEAD:
                raise ExecutionManagerDead(
                    f"execution manager {em_id} was marked dead: it must register again"
                )
            conn.execute(
                ems.update()
                .where(ems.c.id == em_id, ems.c.state == LivenessState.ALIVE)
                .values(last_heartbeat_at=now)
            )

    def is_execution_manager_alive(self, em_id: ExecutionManagerId) -> bool:
        """Whether the EM is Alive. Raises ``UnknownExecutionManager``."""
        ems = schema.execution_managers
        with self._transaction(writes=False) as conn:
            state = conn.execute(
                sa.select(ems.c.state).where(ems.c.id == em_id)
            ).scalar_one_or_none()
        if state is None:
            raise _unknown_execution_manager(em_id)
        return bool(state is LivenessState.ALIVE)

    @_rerun_on_conflict
    def mark_dead_execution_managers(self, stale_before: float) -> list[ExecutionManagerId]:
        """Mark Alive EMs whose last heartbeat is older than ``stale_before`` Dead; return them.

        Upstream's shape (#371): find candidates without locking, then lock them by primary key
        in id order, re-checking the predicate, so a racing heartbeat either wins (the EM stays
        alive) or waits and then sees Dead. Each EM is returned at most once.
        """
        ems = schema.execution_managers
        stale = (ems.c.state == LivenessState.ALIVE, ems.c.last_heartbeat_at < stale_before)
        confirmed: list[ExecutionManagerId] = []
        with self._transaction(writes=True) as conn:
            candidates = conn.execute(sa.select(ems.c.id).where(*stale).order_by(ems.c.id))
            for chunk in chunks(candidates.scalars().all(), _LOCK_CHUNK):
                locked = (
                    conn.execute(
                        sa.select(ems.c.id)
                        .with_hint(ems, "FORCE INDEX (PRIMARY)", "mysql")
                        .with_hint(ems, "FORCE INDEX (PRIMARY)", "mariadb")
                        .where(ems.c.id.in_(chunk), *stale)
                        .order_by(ems.c.id)
                        .with_for_update()
                    )
                    .scalars()
                    .all()
                )
                if locked:
                    # death_confirmed_at is informational (never read back): the wall clock.
                    conn.execute(
                        ems.update()
                        .where(ems.c.id.in_(locked))
                        .values(state=LivenessState.DEAD, death_confirmed_at=time.time())
                    )
                    confirmed.extend(ExecutionManagerId(em_id) for em_id in locked)
        return confirmed

    def list_execution_managers(self, dead_limit: int) -> ExecutionManagerListing:
        """Every Alive EM by id, then up to ``dead_limit`` Dead ones, latest heartbeat first."""
        ems = schema.execution_managers
        columns = (ems.c.id, ems.c.ip_address, ems.c.state, ems.c.last_heartbeat_at)
        dead = ems.c.state == LivenessState.DEAD
        with self._transaction(writes=False) as conn:
            alive_rows = conn.execute(
                sa.select(*columns).where(ems.c.state == LivenessState.ALIVE).order_by(ems.c.id)
            ).all()
            dead_rows = conn.execute(
                sa.select(*columns)
                .where(dead)
                .order_by(ems.c.last_heartbeat_at.desc(), ems.c.id.desc())
                .limit(dead_limit)
            ).all()
            dead_total = conn.execute(sa.select(sa.func.count()).where(dead)).scalar_one()
        return ExecutionManagerListing(
            tuple(
                ExecutionManagerRecord(
                    ExecutionManagerId(row.id),
                    row.ip_address,
                    row.state is LivenessState.ALIVE,
                    float(row.last_heartbeat_at),
                )
                for row in [*alive_rows, *dead_rows]
            ),
            int(dead_total),
        )

    # --- schedulers ---

    @_rerun_on_conflict
    def register_scheduler(self, host: str, port: int) -> SchedulerId:
        """Replace every scheduler row with this one (one scheduler at a time)."""
        with self._transaction(writes=True) as conn:
            conn.execute(sa.delete(schema.schedulers))
            # created_at is informational (never read back): the wall clock.
            return SchedulerId(
                _insert_row(conn, schema.schedulers, host=host, port=port, created_at=time.time())
            )

    def list_schedulers(self) -> list[tuple[SchedulerId, str, int]]:
        """The registered scheduler(s), by id."""
        table = schema.schedulers
        with self._transaction(writes=False) as conn:
            rows = conn.execute(
                sa.select(table.c.id, table.c.host, table.c.port).order_by(table.c.id)
            ).all()
        return [(SchedulerId(row.id), row.host, row.port) for row in rows]

    # --- cluster status ---

    def count_jobs_by_state(self) -> dict[JobState, int]:
        """How many job rows are in each state (states with none are left out)."""
        jobs = schema.jobs
        with self._transaction(writes=False) as conn:
            rows = conn.execute(
                sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
            ).all()
        return {JobState(state): int(count) for state, count in rows}

    def list_jobs(self, query: JobQuery) -> list[JobSummary]:
        """The jobs ``query`` matches, newest (highest id) first, at most ``query.limit``."""
        jobs = schema.jobs
        # Only the error's head is read: a job's error may be 64 KiB, a page holds 1000 jobs.
        head = sa.func.substr(jobs.c.error_message, 1, SUMMARY_CHARS + 1)
        select = sa.select(
            jobs.c.id,
            jobs.c.state,
            jobs.c.resource_group_id,
            jobs.c.created_at,
            jobs.c.updated_at,
            jobs.c.ended_at,
            head.label("error_head"),
        )
        if query.states:
            select = select.where(jobs.c.state.in_(sorted(query.states, key=list(JobState).index)))
        if query.resource_group_id is not None:
            select = select.where(jobs.c.resource_group_id == query.resource_group_id)
        if query.created_after is not None:
            select = select.where(jobs.c.created_at >= query.created_after)
        if query.created_before is not None:
            select = select.where(jobs.c.created_at < query.created_before)
        if query.below_id is not None:
            select = select.where(jobs.c.id < query.below_id)
        select = select.order_by(jobs.c.id.desc()).limit(query.limit)
        with self._transaction(writes=False) as conn:
            rows = conn.execute(select).all()
        return [
            JobSummary(
                id=JobId(row.id),
                state=JobState(row.state),
                resource_group_id=ResourceGroupId(row.resource_group_id),
                created_at=row.created_at,
                updated_at=row.updated_at,
                ended_at=row.ended_at,
                error_summary=summary_line(row.error_head),
            )
            for row in rows
        ]
