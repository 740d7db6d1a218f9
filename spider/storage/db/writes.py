"""The writes that storage batches into shared transactions (group commit).

Each record describes one durable change a request makes on the hot path: registering a job,
moving a job's state, persisting a finished task's outputs, registering or heartbeating an EM.
``StorageDatabase.write_batch`` runs a list of them in one transaction where it can; each write's
own failure (an unknown job, an illegal transition) is its own ``outcome.Error`` and never fails
the others. ``apply_alone`` is the same write as the backend's single-operation method, used by
backends without a real batch and as the fallback when a shared transaction cannot commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import outcome

from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId

if TYPE_CHECKING:
    from spider.core.job_state import JobState
    from spider.storage.db.interface import StorageDatabase


@attrs.frozen
class InsertJob:
    """``insert_job``: a Ready job, or a Running one if ``started`` (SubmitJob registers and
    starts in this one write); the outcome is its ``JobId``."""

    group_id: ResourceGroupId
    compressed_task_graph: bytes
    compressed_inputs: bytes
    now: float
    started: bool = False

    def apply_alone(self, database: StorageDatabase) -> JobId:
        """The write in its own transaction."""
        return database.insert_job(
            self.group_id,
            self.compressed_task_graph,
            self.compressed_inputs,
            self.now,
            started=self.started,
        )


@attrs.frozen
class TransitionJob:
    """``transition_job``: the outcome is the job's previous ``JobState``."""

    job_id: JobId
    target: JobState
    now: float
    serialized_outputs: bytes | None = None
    error_message: str | None = None
    task_records: bytes | None = None

    def apply_alone(self, database: StorageDatabase) -> JobState:
        """The write in its own transaction."""
        return database.transition_job(
            self.job_id,
            self.target,
            self.now,
            serialized_outputs=self.serialized_outputs,
            error_message=self.error_message,
            task_records=self.task_records,
        )


@attrs.frozen
class RecordTaskOutputs:
    """``record_task_outputs``: a finished task's output frame; the outcome is ``None``."""

    job_id: JobId
    task_index: int
    output_frame: bytes

    def apply_alone(self, database: StorageDatabase) -> None:
        """The write in its own transaction."""
        database.record_task_outputs(self.job_id, self.task_index, self.output_frame)


@attrs.frozen
class RegisterExecutionManager:
    """``register_execution_manager``: the outcome is the new ``ExecutionManagerId``."""

    ip_address: str
    now: float

    def apply_alone(self, database: StorageDatabase) -> ExecutionManagerId:
        """The write in its own transaction."""
        return database.register_execution_manager(self.ip_address, self.now)


@attrs.frozen
class HeartbeatExecutionManager:
    """``heartbeat_execution_manager``: the outcome is ``None``."""

    em_id: ExecutionManagerId
    now: float

    def apply_alone(self, database: StorageDatabase) -> None:
        """The write in its own transaction."""
        database.heartbeat_execution_manager(self.em_id, self.now)


Write = (
    InsertJob
    | TransitionJob
    | RecordTaskOutputs
    | RegisterExecutionManager
    | HeartbeatExecutionManager
)


@attrs.frozen
class BatchOutcome:
    """What ``write_batch`` did: one outcome per write, in order, and the commits it took."""

    outcomes: tuple[outcome.Outcome[object], ...]
    transactions: int
    """Transactions committed (0 if every write failed; more than 1 after a fallback)."""

    @property
    def written(self) -> int:
        """How many writes succeeded (are durable)."""
        return sum(isinstance(result, outcome.Value) for result in self.outcomes)


def write_each(database: StorageDatabase, writes: Sequence[Write]) -> BatchOutcome:
    """Every write alone, one transaction each: the batch of a backend that cannot share one."""
    outcomes: list[outcome.Outcome[object]] = []
    for write in writes:
        try:
            outcomes.append(outcome.Value(write.apply_alone(database)))
        except Exception as exc:  # the write's own failure, returned to its requester
            outcomes.append(outcome.Error(exc))
    result = BatchOutcome(tuple(outcomes), 0)
    return attrs.evolve(result, transactions=result.written)
