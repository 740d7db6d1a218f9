"""The persistence contract every storage backend implements.

Methods are synchronous and blocking: the service calls them from worker threads through a
bounded limiter (``trio.to_thread.run_sync``), never on the Trio loop. Each method is atomic on
its own (one transaction); ``write_batch`` runs several hot-path writes in one transaction
(group commit, see ``spider.storage.group_commit``). Times are POSIX seconds from the service's clock, passed in, so tests
control time and both backends agree on it.

The schema is Spider's (``jobs``, ``resource_groups``, ``execution_managers``, ``schedulers``,
``sessions``) plus ``task_outputs``: the outputs of every finished task, so that a Running job
recovered after a restart resumes instead of re-running its finished tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from spider.core.errors import SpiderError
from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SchedulerId, SessionId
from spider.core.job_state import JobState

if TYPE_CHECKING:
    from spider.storage.db.writes import BatchOutcome, Write


# Spider's legal transitions (docs/upstream.md#job-states-and-transitions), plus two of ours:
# Ready -> CleanupReady so that
# cancelling a never-started job that has a cleanup task runs the cleanup instead of crashing
# storage, and Ready -> Failed below.
LEGAL_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.READY: frozenset(),
    JobState.RUNNING: frozenset({JobState.READY}),
    JobState.COMMIT_READY: frozenset({JobState.RUNNING}),
    JobState.CLEANUP_READY: frozenset({JobState.READY, JobState.RUNNING, JobState.COMMIT_READY}),
    JobState.SUCCEEDED: frozenset({JobState.RUNNING, JobState.COMMIT_READY}),
    # Ready -> Failed (ours): a stored job that cannot be recovered is failed with the reason.
    JobState.FAILED: frozenset(
        {JobState.READY, JobState.RUNNING, JobState.COMMIT_READY, JobState.CLEANUP_READY}
    ),
    JobState.CANCELLED: frozenset({JobState.READY, JobState.RUNNING, JobState.CLEANUP_READY}),
}

RECOVERABLE_STATES = frozenset(
    {JobState.READY, JobState.RUNNING, JobState.COMMIT_READY, JobState.CLEANUP_READY}
)


class DatabaseError(SpiderError):
    """Base of persistence errors."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or the connection broke: transient, retry later."""


class UnknownJob(DatabaseError):
    """No job row with that id (storage answers it as its ``JobNotFound``)."""


class IllegalJobTransition(DatabaseError):
    """The job is not in a state the requested transition may start from."""

    def __init__(self, job_id: JobId, current: JobState, target: JobState) -> None:
        super().__init__(f"job {job_id} in state {current.value} cannot move to {target.value}")
        self.job_id = job_id
        self.current = current
        self.target = target


class UnknownResourceGroup(DatabaseError):
    pass


class DuplicateResourceGroup(DatabaseError):
    pass


class UnknownExecutionManager(DatabaseError):
    pass


class ExecutionManagerDead(DatabaseError):
    pass


class PayloadTooLarge(DatabaseError):
    """A blob the database refuses for its size (e.g. over MariaDB's ``max_allowed_packet``).

    Permanent for that request: retrying the same bytes fails the same way.
    """


@attrs.frozen
class JobRecord:
    """A job row. Blobs are stored verbatim as the client sent them."""

    id: JobId
    resource_group_id: ResourceGroupId
    state: JobState
    compressed_task_graph: bytes
    compressed_inputs: bytes
    serialized_outputs: bytes | None
    error_message: str | None
    created_at: float
    ended_at: float | None


@attrs.frozen
class JobQuery:
    """Which jobs a listing wants (``list_jobs``): every filter given must match."""

    states: frozenset[JobState] = frozenset()
    """Any of these states; empty: every state."""
    resource_group_id: ResourceGroupId | None = None
    created_after: float | None = None
    """At or after (Unix seconds)."""
    created_before: float | None = None
    """Strictly before."""
    below_id: JobId | None = None
    """Only jobs with a smaller id: where the previous page ended (pages go newest first)."""
    limit: int = 100


@attrs.frozen
class JobSummary:
    """A job as a listing shows it: no blobs, the error's first line only."""

    id: JobId
    state: JobState
    resource_group_id: ResourceGroupId
    created_at: float
    updated_at: float
    ended_at: float | None
    error_summary: str


@attrs.frozen
class StoredJobTasks:
    """A job's graph and, once its regular tasks are over, their records (``task_records``)."""

    state: JobState
    compressed_task_graph: bytes
    task_records: bytes | None


@attrs.frozen
class JobStatus:
    """The small part of a job row that state queries need (no blobs)."""

    id: JobId
    state: JobState
    error_message: str | None
    resource_group_id: ResourceGroupId
    """Its owner: job calls with a group credential are checked against it."""


@attrs.frozen
class ExecutionManagerRecord:
    """An execution-manager row, as the cluster status shows it."""

    id: ExecutionManagerId
    ip_address: str
    alive: bool
    last_heartbeat_at: float


@attrs.frozen
class ExecutionManagerListing:
    """Every Alive EM and the most recently heard-from Dead ones, plus how many are Dead."""

    execution_managers: tuple[ExecutionManagerRecord, ...]
    dead_total: int


class StorageDatabase(Protocol):
    """What the storage service needs from a database. Implementations are thread-safe."""

    def create_schema(self) -> None:
        """Create missing tables and indexes (idempotent) and apply migrations."""

    def close(self) -> None:
        """Release connections."""

    # --- group commit ---
    def write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        """Apply ``writes`` in order, sharing one transaction where the backend can.

        Each write's outcome is its result or its own error (the error its single-operation
        method would raise); one write's failure never fails another. Nothing is returned before
        every successful write is durable. ``spider.storage.db.writes.write_each`` is a correct
        (unbatched) implementation.
        """

    # --- sessions ---
    def new_session(self) -> SessionId:
        """Insert a sessions row; its id is this storage process's session (strictly increasing)."""

    # --- resource groups ---
    def add_resource_group(self, external_id: str, password_hash: bytes) -> ResourceGroupId:
        """Raises ``DuplicateResourceGroup``."""

    def get_resource_group_password_hash(self, group_id: ResourceGroupId) -> bytes | None:
        """``None`` when the group does not exist."""

    # --- jobs ---
    def insert_job(
        self,
        group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        now: float,
        *,
        started: bool = False,
    ) -> JobId:
        """Insert a Ready job, or a Running one if ``started`` (Spider-py's SubmitJob: register
        and start in one transaction). Raises ``UnknownResourceGroup``."""

    def get_job_status(self, job_id: JobId) -> JobStatus:
        """Raises ``UnknownJob``."""

    def get_job_outputs(self, job_id: JobId) -> tuple[JobState, bytes | None]:
        """The state and the stored ``SerializedTaskOutputs``. Raises ``UnknownJob``."""

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
        """Move a job to ``target`` if ``LEGAL_TRANSITIONS`` allows it from its current state.

        Locks the row, checks, updates (``ended_at`` on a terminal target; outputs and error when
        given), stores ``task_records`` when given (the first write wins) and returns the
        previous state. Raises ``UnknownJob`` or ``IllegalJobTransition``.
        """

    def iter_recoverable_jobs(self) -> Iterator[JobRecord]:
        """Every job in ``RECOVERABLE_STATES``, ordered by id."""

    def delete_terminated_jobs(self, ended_before: float, batch: int = 1000) -> int:
        """Delete terminal jobs (and their task outputs) that ended before ``ended_before``."""

    # --- finished task outputs (our addition) ---
    def record_task_outputs(self, job_id: JobId, task_index: int, output_frame: bytes) -> None:
        """Persist a finished task's output wire frame (idempotent: the first write wins)."""

    def load_task_outputs(self, job_id: JobId) -> dict[int, bytes]:
        """Every persisted task output frame of a job, by task index."""

    def get_job_tasks(self, job_id: JobId) -> StoredJobTasks:
        """What the task listing reads of a job: its graph and task records. Raises
        ``UnknownJob``."""

    # --- execution managers ---
    def register_execution_manager(self, ip_address: str, now: float) -> ExecutionManagerId:
        """Insert an Alive EM with ``last_heartbeat_at = now``."""

    def heartbeat_execution_manager(self, em_id: ExecutionManagerId, now: float) -> None:
        """Raises ``UnknownExecutionManager`` or ``ExecutionManagerDead``."""

    def is_execution_manager_alive(self, em_id: ExecutionManagerId) -> bool:
        """Raises ``UnknownExecutionManager``."""

    def mark_dead_execution_managers(self, stale_before: float) -> list[ExecutionManagerId]:
        """Mark Alive EMs whose last heartbeat is older than ``stale_before`` Dead; return them.

        Each EM is returned at most once, ever.
        """

    def list_execution_managers(self, dead_limit: int) -> ExecutionManagerListing:
        """Every Alive EM by id, then up to ``dead_limit`` Dead ones, latest heartbeat first."""

    # --- schedulers ---
    def register_scheduler(self, host: str, port: int) -> SchedulerId:
        """Replace every scheduler row with this one (one scheduler at a time)."""

    def list_schedulers(self) -> list[tuple[SchedulerId, str, int]]:
        """The registered scheduler(s)."""

    # --- cluster status ---
    def count_jobs_by_state(self) -> dict[JobState, int]:
        """How many job rows are in each state (states with none are left out)."""

    def list_jobs(self, query: JobQuery) -> list[JobSummary]:
        """The jobs ``query`` matches, newest (highest id) first, at most ``query.limit``."""


def check_transition(job_id: JobId, current: JobState, target: JobState) -> None:
    """Raise ``IllegalJobTransition`` unless ``current -> target`` is legal."""
    if current not in LEGAL_TRANSITIONS[target]:
        raise IllegalJobTransition(job_id, current, target)


def chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    """Split ``ids`` into lists of at most ``size`` (for IN clauses)."""
    batch: list[int] = []
    for item in ids:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
