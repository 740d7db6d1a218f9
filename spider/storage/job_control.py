"""``JobControlBlock``: a cached job's state, its live graph and its termination tasks.

The methods are synchronous and split in two kinds. Checks (``check_*``, ``prepare_*``) raise a
storage error and change nothing; they run before a database write. Applications
(``apply_*``) change the block and never raise; they run after the write succeeded. The caller
(``JobLifecycle``) does the writing, holds the job exclusively (``exclusive``) across check,
write and apply for every change of job state, and turns what the applications return (tasks to
enqueue, instances made stale) into queue entries and pool removals.

The success of a regular task that does not end the job needs no exclusive hold: it is
*recorded* (``begin_recording`` ... ``end_recording``) while its outputs are written, so the
successes of many tasks of one job are written concurrently and share a group commit. A
recording blocks exclusive holders (they wait until recordings end, and no recording starts
while one waits), so the job's state never changes under a recording, and a success that may be
the job's last takes the exclusive path, which sees every earlier success applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph, TerminationTaskDescriptor
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_outputs import encode_task_outputs
from spider.core.task_state import TaskState
from spider.core.wire import EMPTY_FRAME
from spider.storage.dataflow import Dataflow, JobInputs
from spider.storage.errors import BadRequest, CacheStale, InvalidJobState, StaleReason
from spider.storage.task_control import TaskControlBlock

_STALE_FOR_KIND = {
    TaskKind.INDEX: (JobState.RUNNING, StaleReason.JOB_NO_LONGER_RUNNING),
    TaskKind.COMMIT: (JobState.COMMIT_READY, StaleReason.JOB_NO_LONGER_COMMIT_READY),
    TaskKind.CLEANUP: (JobState.CLEANUP_READY, StaleReason.JOB_NO_LONGER_CLEANUP_READY),
}


def _termination_block(
    job_id: JobId, task_id: TaskId, descriptor: TerminationTaskDescriptor | None
) -> TaskControlBlock | None:
    if descriptor is None:
        return None
    return TaskControlBlock.new(
        job_id, task_id, descriptor.tdl_context, descriptor.execution_policy, ready=True
    )


@attrs.define(eq=False)
class JobControlBlock:
    """One job in the cache."""

    id: JobId
    resource_group_id: ResourceGroupId
    state: JobState
    dataflow: Dataflow | None
    """The live graph while Ready or Running; dropped once the regular tasks are over."""
    commit: TaskControlBlock | None
    cleanup: TaskControlBlock | None
    serialized_outputs: bytes | None = None
    """The job outputs (``SerializedTaskOutputs``) once the regular tasks have succeeded."""
    error_message: str | None = None
    task_records: bytes | None = None
    """The regular tasks' stored records (``spider.storage.task_records``), kept from when the
    dataflow is dropped until the job is evicted; ``None`` before, or for a job recovered
    past that point (the database has them)."""
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    """Held across check, database write and apply of every change of job state (taken
    through ``exclusive``, which also waits for recordings to end)."""
    recording: set[int] = attrs.field(factory=set)
    """Regular tasks whose success is being written without the lock."""
    _recording_ended: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    ended: trio.Event = attrs.field(factory=trio.Event)
    """Set once the job's terminal state is durable and applied here; WaitForJob waits on it."""

    @classmethod
    def build(
        cls,
        job_id: JobId,
        resource_group_id: ResourceGroupId,
        state: JobState,
        graph: TaskGraph,
        job_inputs: JobInputs,
        *,
        serialized_outputs: bytes | None = None,
    ) -> JobControlBlock:
        """A block for a job in ``state``; a Ready or Running job gets a fresh dataflow (a
        Running one with its inputs decoded)."""
        live = state in (JobState.READY, JobState.RUNNING)
        return cls(
            job_id,
            resource_group_id,
            state,
            Dataflow.build(job_id, graph, job_inputs) if live else None,
            _termination_block(job_id, TaskId.COMMIT, graph.commit_task),
            _termination_block(job_id, TaskId.CLEANUP, graph.cleanup_task),
            serialized_outputs,
        )

    # --- concurrency ----------------------------------------------------------------------

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the job alone: the lock, once no success is being recorded."""
        async with self.lock:
            while self.recording:
                await self._recording_ended.park()
            yield

    def may_record(self, index: int) -> bool:
        """Whether task ``index``'s success can be written without holding the job.

        Not if an exclusive holder waits or holds (it goes first), nor if the success could be
        the job's last once every success being recorded has landed (the last one moves the
        job, exclusively), nor if the same task's success is being recorded already.
        """
        return (
            not self.lock.locked()
            and self.dataflow is not None
            and index not in self.recording
            and self.dataflow.unfinished - len(self.recording) > 1
        )

    def begin_recording(self, index: int) -> None:
        """Task ``index``'s success is being written (after ``may_record``)."""
        self.recording.add(index)

    def end_recording(self, index: int) -> None:
        """The write of task ``index``'s success is over (applied or failed)."""
        self.recording.discard(index)
        self._recording_ended.unpark_all()

    async def recording_ended(self) -> None:
        """Wait until some recording ends."""
        await self._recording_ended.park()

    # --- checks ---------------------------------------------------------------------------

    def require_state(self, operation: str, *expected: JobState, hint: str = "") -> None:
        """Raise ``InvalidJobState`` unless the job is in one of ``expected``."""
        if self.state not in expected:
            raise InvalidJobState(self.id, self.state, operation, expected, hint=hint)

    def _block(self, task_id: TaskId) -> TaskControlBlock:
        if task_id.kind is TaskKind.INDEX:
            if self.dataflow is None:  # pragma: no cover - a Running job always has its dataflow
                raise AssertionError(f"job {self.id} is {self.state.value} without a dataflow")
            assert task_id.position is not None
            return self.dataflow.task(task_id.position)
        block = self.commit if task_id.kind is TaskKind.COMMIT else self.cleanup
        assert block is not None
        return block

    def accepting(self, task_id: TaskId) -> TaskControlBlock:
        """The block of ``task_id`` if the job is in the state where that task runs.

        ``BadRequest`` for a task the job does not have; ``CacheStale`` if the job has moved on
        (or not started).
        """
        if task_id.kind is TaskKind.COMMIT and self.commit is None:
            raise BadRequest(f"job {self.id} has no commit task")
        if task_id.kind is TaskKind.CLEANUP and self.cleanup is None:
            raise BadRequest(f"job {self.id} has no cleanup task")
        needed, reason = _STALE_FOR_KIND[task_id.kind]
        if self.state is not needed:
            if self.state.is_terminal:
                reason = StaleReason.JOB_ALREADY_TERMINATED
            elif self.state is JobState.READY:
                reason = StaleReason.JOB_NOT_STARTED
            raise CacheStale(
                reason, f"job {self.id} is {self.state.value}, task {task_id} needs {needed.value}"
            )
        return self._block(task_id)

    def prepare_registration(self, task_id: TaskId) -> tuple[TaskControlBlock, bytes]:
        """The block to add an instance to, and the instance's ``serialized_task_io``.

        Index tasks get the wire frame of their inputs, the commit task the job outputs, the
        cleanup task an empty wire frame (upstream sends empty bytes, which is not a frame).
        """
        tcb = self.accepting(task_id)
        tcb.check_can_register()
        if task_id.kind is TaskKind.INDEX:
            assert self.dataflow is not None
            assert task_id.position is not None
            return tcb, self.dataflow.input_frame(task_id.position)
        if task_id.kind is TaskKind.COMMIT:
            assert self.serialized_outputs is not None
            return tcb, self.serialized_outputs
        return tcb, EMPTY_FRAME

    def live_block(self, task_id: TaskId, instance_id: TaskInstanceId) -> TaskControlBlock:
        """The block of ``task_id`` if ``instance_id`` may report on it; else ``CacheStale``."""
        tcb = self.accepting(task_id)
        tcb.check_instance(instance_id)
        return tcb

    def is_last_task(self) -> bool:
        """True if exactly one regular task has not succeeded (a Running job only)."""
        return self.dataflow is not None and self.dataflow.unfinished == 1

    def completion_outputs(self, index: int, payloads: list[bytes]) -> tuple[JobState, bytes]:
        """The state and job outputs the job moves to if task ``index`` (the last) succeeds."""
        assert self.dataflow is not None
        outputs = encode_task_outputs(self.dataflow.job_output_payloads(index, payloads))
        return (JobState.COMMIT_READY if self.commit else JobState.SUCCEEDED), outputs

    def cancel_target(self) -> JobState:
        """The state a cancel moves a Ready, Running or CommitReady job to."""
        return JobState.CLEANUP_READY if self.cleanup is not None else JobState.CANCELLED

    # --- applications (after the database write) -------------------------------------------

    def apply_start(self) -> list[TaskId]:
        """Ready -> Running; return the input tasks to enqueue."""
        assert self.dataflow is not None
        self.state = JobState.RUNNING
        return self.dataflow.ready_tasks()

    def apply_task_success(
        self, index: int, payloads: list[bytes], now: float
    ) -> tuple[list[TaskId], set[TaskInstanceId]]:
        """A regular task (not the last) succeeded; return children to enqueue, stale instances."""
        assert self.dataflow is not None
        return self.dataflow.succeed(index, payloads, now)

    def apply_completion(
        self,
        index: int,
        payloads: list[bytes],
        state: JobState,
        outputs: bytes,
        records: bytes | None,
    ) -> set[TaskInstanceId]:
        """The last regular task succeeded: the job is CommitReady or Succeeded."""
        assert self.dataflow is not None
        _, dropped = self.dataflow.succeed(index, payloads, None)
        self._drop_dataflow(records)
        self.state = state
        self.serialized_outputs = outputs
        return dropped

    def apply_termination_success(self, tcb: TaskControlBlock, now: float) -> set[TaskInstanceId]:
        """The commit task succeeded (-> Succeeded) or the cleanup task did (-> Cancelled)."""
        self.state = JobState.SUCCEEDED if tcb is self.commit else JobState.CANCELLED
        return tcb.finish(TaskState.SUCCEEDED, now=now)

    def apply_failure(
        self, tcb: TaskControlBlock, message: str, now: float, records: bytes | None
    ) -> set[TaskInstanceId]:
        """``tcb`` ran out of retries: the job is Failed and every other task is cancelled."""
        dropped = tcb.finish(TaskState.FAILED, message, now=now)
        dropped |= self._cancel_tasks(records)
        self.state = JobState.FAILED
        self.error_message = message
        return dropped

    def apply_cancel(self, target: JobState, records: bytes | None) -> set[TaskInstanceId]:
        """Cancel every regular task and the commit task; the job moves to ``target``."""
        dropped = self._cancel_tasks(records, keep_cleanup=target is JobState.CLEANUP_READY)
        self.state = target
        return dropped

    def _drop_dataflow(self, records: bytes | None) -> None:
        if self.dataflow is not None:
            self.dataflow = None
            self.task_records = records

    def _cancel_tasks(
        self, records: bytes | None, *, keep_cleanup: bool = False
    ) -> set[TaskInstanceId]:
        dropped: set[TaskInstanceId] = set()
        if self.dataflow is not None:
            dropped |= self.dataflow.cancel_all()
            self._drop_dataflow(records)
        if self.commit is not None:
            dropped |= self.commit.cancel()
        if self.cleanup is not None and not keep_cleanup:
            dropped |= self.cleanup.cancel()
        return dropped

    # --- queries ---------------------------------------------------------------------------

    def ready_work(self) -> list[TaskId]:
        """Every task that may be dispatched now and has no live instance (for resends)."""
        if self.state is JobState.RUNNING and self.dataflow is not None:
            return self.dataflow.ready_tasks()
        termination = {JobState.COMMIT_READY: self.commit, JobState.CLEANUP_READY: self.cleanup}
        tcb = termination.get(self.state)
        if tcb is not None and tcb.offerable:
            return [tcb.task_id]
        return []

    def live_instances(self) -> set[TaskInstanceId]:
        """Every live instance of every task of the job."""
        blocks: list[TaskControlBlock] = list(self.dataflow.tasks) if self.dataflow else []
        blocks.extend(tcb for tcb in (self.commit, self.cleanup) if tcb is not None)
        live: set[TaskInstanceId] = set()
        for tcb in blocks:
            live |= tcb.instances
        return live
