"""``JobLifecycle``: jobs and their task instances, from RegisterJob to a terminal state.

Ordering rule: **database first, then cache**. Every operation that changes something durable
checks the cache (raising and changing nothing if the request does not apply), writes the
database, and only then applies the change to the cache, synchronously (no checkpoint between
the write returning and the cache change). A failed write therefore leaves the cache as it was
and fails the request with ``StorageUnavailable`` or ``StorageInternalError``; the caller may
retry and the service keeps serving.

Locking: a job is held exclusively (``JobControlBlock.exclusive``) across check, write and
apply of every change of the job's state, so concurrent reports on one job see each other's
effects. The success of a regular task that cannot be the job's last is not: it is *recorded*
(the task is marked while its outputs are written, then the success is applied), so the
successes of one job's tasks, and of different jobs, are written concurrently and share group
commits (see ``spider.storage.group_commit``); a second report on a task being recorded waits
for that recording and re-checks. Exclusive holders wait for recordings to end, so the job's
state never changes under one. Operations without a database write (instance registration, a
failure with retries left, removal of a dead EM's instance) hold nothing: they are synchronous,
hence atomic under Trio, and every other operation re-checks the cache after each await. Queue
entries are added after the apply; adding never blocks (see ``InboundQueue``), so nothing is
ever held while waiting for the scheduler.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Iterable
from typing import Final

import attrs
import trio

from spider.core.bounds import summary_line, truncated
from spider.core.compression import DEFAULT_DECOMPRESSED_LIMIT
from spider.core.errors import CodecError, WireFormatError
from spider.core.ids import (
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SessionId,
    TaskInstanceId,
)
from spider.core.job_state import JobState
from spider.core.ready_task import ReadyTask
from spider.core.task_graph import (
    JobSubmission,
    TdlContext,
    TimeoutPolicy,
    decode_job_inputs,
    decode_job_submission,
)
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_state import TaskState
from spider.core.wire import decode_frame
from spider.storage import metrics
from spider.storage.config import LimitsConfig
from spider.storage.dataflow import Dataflow, JobInputs
from spider.storage.errors import (
    BadRequest,
    CacheStale,
    InvalidJobState,
    JobNotFound,
    StaleReason,
    StaleSession,
    StorageError,
    StorageInternalError,
)
from spider.storage.inbound_queue import InboundQueue
from spider.storage.instance_pool import InstanceRecord, TaskInstancePool
from spider.storage.job_cache import JobCache
from spider.storage.job_control import JobControlBlock
from spider.storage.liveness import ExecutionManagerLiveness
from spider.storage.persistence import Persistence
from spider.storage.retry_timer import RetryTimer
from spider.storage.task_control import TaskControlBlock
from spider.storage.task_records import encode_final_records

LOGGER = logging.getLogger("spider.storage.jobs")

INLINE_DECODE_BYTES: Final = 2048
"""A submission whose graph and inputs each decompress to at most this many bytes (about ten
tasks; 0.1-0.2 ms of decoding) is decoded on the event loop: a worker thread's round trip cost a
one-task job 0.5 ms of latency, ten times the decoding itself. Bigger ones go to a thread."""

RECORDS_OFFLOAD_TASKS: Final = 10_000
"""Jobs with at least this many tasks build their task records in a worker thread (about
6 ms of encoding at this size)."""


@attrs.frozen
class InstanceContext:
    """What an EM needs to run a registered instance (``RegisterTaskInstance``'s answer).

    Storage's side, before it becomes the wire's ``ExecutionContext``: the task's TDL context and
    timeout policy as storage holds them (the EM's ``ExecutionContext`` has them flattened)."""

    task_instance_id: TaskInstanceId
    tdl_context: TdlContext
    timeout_policy: TimeoutPolicy
    serialized_task_io: bytes
    """Index task: the input wire frame. Commit: the job outputs (``SerializedTaskOutputs``).
    Cleanup: an empty wire frame."""


@attrs.frozen
class JobOutcome:
    """What WaitForJob answers: the job's state and, once it is terminal, how it ended."""

    state: JobState
    serialized_outputs: bytes | None = None
    """``SerializedTaskOutputs`` of a Succeeded job."""
    error_message: str | None = None
    """The failure of a Failed job (or the reason recorded for a Cancelled one)."""


def hard_timeout_message(timeout_policy: TimeoutPolicy) -> str:
    """The failure message of an instance storage removed for exceeding its hard timeout."""
    return f"hard timeout ({timeout_policy.hard_timeout_ms} ms) exceeded (enforced by storage)"


@attrs.define(eq=False)
class JobLifecycle:
    """The job cache's operations, with their database writes and queue entries."""

    persistence: Persistence
    cache: JobCache
    queue: InboundQueue
    pool: TaskInstancePool
    liveness: ExecutionManagerLiveness
    session: SessionId
    clock: Callable[[], float]
    """Wall-clock seconds, for database timestamps."""
    monotonic: Callable[[], float] = trio.current_time
    """Seconds for in-memory deadlines and retention (``trio.current_time`` in production)."""
    retry_timer: RetryTimer = attrs.field(factory=RetryTimer)
    """Failed tasks waiting out their retry delay; ``open_storage_state`` runs it."""
    uniform: Callable[[], float] = random.random
    """Draws each retry delay's jitter (tests pass their own)."""
    limits: LimitsConfig = attrs.field(factory=LimitsConfig)
    """What one request may carry (graph, inputs, outputs, error message)."""

    # --- jobs (JobOrchestrationService) ----------------------------------------------------

    async def register_job(
        self,
        resource_group_id: ResourceGroupId,
        compressed_task_graph: bytes,
        compressed_inputs: bytes,
        *,
        start: bool = False,
    ) -> JobId:
        """Validate a submission, insert it as a Ready job and cache it.

        With ``start`` (Spider-py's SubmitJob) the job is inserted Running, in the same
        transaction, and its input tasks are enqueued: RegisterJob and StartJob in one write.
        """
        submission = await self._decode_submission(compressed_task_graph, compressed_inputs)
        job_id = await self.persistence.insert_job(
            resource_group_id, compressed_task_graph, compressed_inputs, self.clock(), started=start
        )
        # A job left Ready keeps its inputs as sent (compressed) until StartJob decodes them.
        inputs = JobInputs.decoded(submission.inputs) if start else JobInputs(compressed_inputs)
        jcb = JobControlBlock.build(
            job_id, resource_group_id, JobState.READY, submission.task_graph, inputs
        )
        ready = jcb.apply_start() if start else []
        self.cache.insert(jcb)
        self._enqueue(jcb, ready)
        metrics.JOBS_SUBMITTED.inc()
        return job_id

    async def start_job(self, job_id: JobId) -> JobState:
        """Ready -> Running, then enqueue every input task."""
        jcb = await self._cached_job(job_id, "StartJob", JobState.READY)
        await self._decode_inputs(jcb)
        async with jcb.exclusive():
            jcb.require_state("StartJob", JobState.READY)
            await self._transition(jcb, JobState.RUNNING)
            ready = jcb.apply_start()
        self._enqueue(jcb, ready)
        return JobState.RUNNING

    async def _decode_inputs(self, jcb: JobControlBlock) -> None:
        """Decode a Ready job's inputs (in a worker thread), for its input tasks to read.

        They decoded when the job was registered (or recovered), so a failure here is storage's
        fault; the limit is the larger of the configured one and the default, in case the
        setting was lowered since the job was accepted."""
        dataflow = jcb.dataflow
        if dataflow is None or dataflow.job_inputs.payloads is not None:
            return
        decode = functools.partial(
            decode_job_inputs,
            expected=dataflow.graph.num_graph_inputs,
            limit=max(self.limits.max_job_inputs_bytes, DEFAULT_DECOMPRESSED_LIMIT),
        )
        try:
            payloads = await self.persistence.offload(decode, dataflow.job_inputs.compressed)
        except CodecError as exc:
            raise StorageInternalError(
                f"job {jcb.id}: its inputs, accepted when it was registered, do not decode: {exc}"
            ) from exc
        if dataflow.job_inputs.payloads is None:  # a concurrent StartJob may have been first
            dataflow.job_inputs.start(payloads)

    async def _decode_submission(
        self, compressed_task_graph: bytes, compressed_inputs: bytes
    ) -> JobSubmission:
        """Decode and check a submission: on the event loop if it is small, else in a worker
        thread (``INLINE_DECODE_BYTES``). Raises ``BadRequest``."""
        decode = functools.partial(
            decode_job_submission,
            settings=("runtime.limits.max_task_graph_bytes", "runtime.limits.max_job_inputs_bytes"),
        )
        try:
            return decode(
                compressed_task_graph,
                compressed_inputs,
                limit=min(INLINE_DECODE_BYTES, self.limits.max_task_graph_bytes),
                inputs_limit=min(INLINE_DECODE_BYTES, self.limits.max_job_inputs_bytes),
            )
        except CodecError:
            pass  # too big to decode here, or invalid: the thread's decoding says which
        try:
            return await self.persistence.offload(
                functools.partial(
                    decode,
                    limit=self.limits.max_task_graph_bytes,
                    inputs_limit=self.limits.max_job_inputs_bytes,
                ),
                compressed_task_graph,
                compressed_inputs,
            )
        except CodecError as exc:
            raise BadRequest(str(exc)) from exc

    async def cancel_job(self, job_id: JobId) -> JobState:
        """Cancel a job; return its state afterwards.

        Ready, Running or CommitReady go to CleanupReady (the cleanup task is enqueued) if the
        job has a cleanup task, else to Cancelled. Live instances become stale. A job already
        CleanupReady or terminal is left alone and its state returned, so cancelling twice is
        harmless. A CommitReady job without a cleanup task cannot be cancelled: its outputs are
        final and the commit may have started.
        """
        jcb = self.cache.get(job_id)
        if jcb is None:
            status = await self.persistence.get_job_status(job_id)
            if status.state.is_terminal:
                return status.state
            raise self._uncached(job_id, status.state)
        async with jcb.exclusive():
            if jcb.state.is_terminal or jcb.state is JobState.CLEANUP_READY:
                return jcb.state
            target = jcb.cancel_target()
            if jcb.state is JobState.COMMIT_READY and target is JobState.CANCELLED:
                raise InvalidJobState(
                    job_id,
                    jcb.state,
                    "CancelJob",
                    (JobState.READY, JobState.RUNNING),
                    hint="every task has succeeded and the job has no cleanup task to undo "
                    "the commit; wait for it to finish",
                )
            records = await self._closing_records(jcb, self.clock())
            await self._transition(jcb, target, task_records=records)
            dropped = jcb.apply_cancel(target, records)
        self.pool.revoke(dropped)
        if target is JobState.CLEANUP_READY:
            self._enqueue(jcb, [TaskId.CLEANUP])
        else:
            self._terminated(jcb)
        return target

    async def get_job_state(self, job_id: JobId) -> JobState:
        """The job's state, from the cache or else the database."""
        jcb = self.cache.get(job_id)
        if jcb is not None:
            await trio.lowlevel.checkpoint()
            return jcb.state
        return (await self.persistence.get_job_status(job_id)).state

    async def resource_group_of(self, job_id: JobId) -> ResourceGroupId:
        """The job's owner, from the cache or else the database; ``JobNotFound`` if unknown."""
        jcb = self.cache.get(job_id)
        if jcb is not None:
            return jcb.resource_group_id
        return (await self.persistence.get_job_status(job_id)).resource_group_id

    async def wait_for_job(self, job_id: JobId, wait_sec: float) -> JobOutcome:
        """The job's outcome once it is terminal, waiting up to ``wait_sec`` for that.

        Waits on the job's ``ended`` event, which is set only after the terminal state is
        durable, so a waiter is never answered before the commit. A job not (or no longer) in
        the cache is answered from the database at once: every unfinished job is cached.
        """
        jcb = self.cache.get(job_id)
        if jcb is None:
            return await self._stored_outcome(job_id)
        with trio.move_on_after(wait_sec):
            await jcb.ended.wait()
        state = jcb.state
        if not state.is_terminal:
            return JobOutcome(state)
        if state is JobState.SUCCEEDED:
            return JobOutcome(state, serialized_outputs=jcb.serialized_outputs)
        return JobOutcome(state, error_message=jcb.error_message)

    async def _stored_outcome(self, job_id: JobId) -> JobOutcome:
        status = await self.persistence.get_job_status(job_id)
        if status.state is not JobState.SUCCEEDED:
            return JobOutcome(status.state, error_message=status.error_message)
        state, outputs = await self.persistence.get_job_outputs(job_id)
        if outputs is None:
            raise StorageInternalError(f"job {job_id} is Succeeded but has no stored outputs")
        return JobOutcome(state, serialized_outputs=outputs)

    async def get_job_outputs(self, job_id: JobId) -> bytes:
        """The outputs (``SerializedTaskOutputs``) of a Succeeded job."""
        jcb = self.cache.get(job_id)
        if jcb is not None:
            await trio.lowlevel.checkpoint()
            jcb.require_state("GetJobOutputs", JobState.SUCCEEDED)
            assert jcb.serialized_outputs is not None
            return jcb.serialized_outputs
        state, outputs = await self.persistence.get_job_outputs(job_id)
        if state is not JobState.SUCCEEDED:
            raise InvalidJobState(job_id, state, "GetJobOutputs", (JobState.SUCCEEDED,))
        if outputs is None:
            raise StorageInternalError(f"job {job_id} is Succeeded but has no stored outputs")
        return outputs

    async def get_job_error(self, job_id: JobId) -> str:
        """The failure message of a Failed job."""
        jcb = self.cache.get(job_id)
        if jcb is not None:
            await trio.lowlevel.checkpoint()
            jcb.require_state("GetJobError", JobState.FAILED)
            return jcb.error_message or ""
        status = await self.persistence.get_job_status(job_id)
        if status.state is not JobState.FAILED:
            raise InvalidJobState(job_id, status.state, "GetJobError", (JobState.FAILED,))
        return status.error_message or ""

    # --- task instances (TaskInstanceManagementService) ------------------------------------

    async def register_task_instance(
        self,
        job_id: JobId,
        task_id: TaskId,
        execution_manager_id: ExecutionManagerId,
        session_id: SessionId,
    ) -> InstanceContext:
        """Start a new instance of a ready task on an EM; return its execution context."""
        self._check_session(session_id)
        await self.liveness.require_alive(execution_manager_id)
        jcb = self._cached_for_instances(job_id)
        tcb, task_io = jcb.prepare_registration(task_id)
        timeout_policy = tcb.policy.timeout_policy
        record = self.pool.add(
            jcb.resource_group_id,
            job_id,
            task_id,
            execution_manager_id,
            timeout_policy,
            self.monotonic(),
        )
        tcb.add_instance(record.id, self.clock())
        metrics.TASKS_STARTED.inc()
        return InstanceContext(record.id, tcb.tdl_context, timeout_policy, task_io)

    def _check_job_outputs(
        self, dataflow: Dataflow, task_id: TaskId, payloads: list[bytes]
    ) -> None:
        """``BadRequest`` if ``payloads`` would take the job's outputs past their cap. Checked
        per report: reports recorded concurrently may pass it by one task's outputs each."""
        limit = self.limits.max_job_outputs_bytes
        total = dataflow.output_bytes + sum(map(len, payloads))
        if total > limit:
            raise BadRequest(
                f"task outputs of task {task_id} would bring the job's outputs to {total} "
                f"bytes, over the limit of {limit} bytes for one job (setting "
                "runtime.limits.max_job_outputs_bytes); report the task as failed instead"
            )

    async def report_task_success(
        self,
        job_id: JobId,
        task_id: TaskId,
        instance_id: TaskInstanceId,
        session_id: SessionId,
        serialized_outputs: bytes,
    ) -> None:
        """An instance succeeded; persist and propagate its outputs, and advance the job.

        ``serialized_outputs`` (a wire frame, one payload per declared output) matters for index
        tasks only; it is checked before anything changes.
        """
        await trio.lowlevel.checkpoint()
        limit = self.limits.max_task_outputs_bytes
        if len(serialized_outputs) > limit:
            raise BadRequest(
                f"task outputs of task {task_id} are {len(serialized_outputs)} bytes, over the "
                f"limit of {limit} bytes (setting runtime.limits.max_task_outputs_bytes); report "
                "the task as failed instead"
            )
        self._check_session(session_id)
        payloads: list[bytes] | None = None
        if task_id.kind is TaskKind.INDEX:
            try:
                payloads = decode_frame(serialized_outputs)
            except WireFormatError as exc:
                raise BadRequest(f"task outputs of task {task_id}: {exc}") from exc
        try:
            jcb = self._cached_for_instances(job_id)
            jcb.live_block(task_id, instance_id)
        except CacheStale:
            # Revoked, but it ended before its EM could kill it: nothing is left to kill.
            self.pool.revocations.forget_instance(instance_id)
            raise
        if payloads is not None:
            assert jcb.dataflow is not None
            assert task_id.position is not None
            jcb.dataflow.check_outputs(task_id.position, payloads)
            self._check_job_outputs(jcb.dataflow, task_id, payloads)
        await self._apply_success(jcb, task_id, instance_id, payloads, serialized_outputs)
        metrics.SUCCEEDED.inc()

    async def _apply_success(
        self,
        jcb: JobControlBlock,
        task_id: TaskId,
        instance_id: TaskInstanceId,
        payloads: list[bytes] | None,
        serialized_outputs: bytes,
    ) -> None:
        """Persist a checked success and advance the job; raises if the instance went stale
        meanwhile."""
        index = task_id.position
        while index is not None and index in jcb.recording:
            # Another instance's success of this task is being written: its outcome decides
            # whether this report still applies.
            await jcb.recording_ended()
            jcb.live_block(task_id, instance_id)
        if payloads is not None and index is not None and jcb.may_record(index):
            ready = await self._record_regular_task(
                jcb, index, payloads, serialized_outputs, instance_id
            )
            self._enqueue(jcb, ready)
            return
        async with jcb.exclusive():
            tcb = jcb.live_block(task_id, instance_id)
            if payloads is None:
                await self._finish_termination_task(jcb, tcb, instance_id)
                return
            assert index is not None
            ready = await self._finish_regular_task(
                jcb, index, payloads, serialized_outputs, instance_id
            )
        self._enqueue(jcb, ready)

    async def report_task_failure(
        self,
        job_id: JobId,
        task_id: TaskId,
        instance_id: TaskInstanceId,
        session_id: SessionId,
        error_message: str,
    ) -> None:
        """An instance failed: retry the task, or fail the job if no retry is left.

        A message over ``limits.max_error_message_chars`` is truncated with a marker, not
        refused: refusing it would lose the failure (the EM cannot do better than resend it).
        """
        await trio.lowlevel.checkpoint()
        error_message = truncated(
            error_message,
            self.limits.max_error_message_chars,
            marker=f"... [truncated from {len(error_message)} characters to the limit, "
            "runtime.limits.max_error_message_chars]",
        )
        self._check_session(session_id)
        try:
            jcb = self._cached_for_instances(job_id)
            await self._fail_instance(jcb, task_id, instance_id, error_message)
            metrics.FAILED.inc()
        except CacheStale:
            # Revoked, but it ended before its EM could kill it: nothing is left to kill.
            self.pool.revocations.forget_instance(instance_id)
            raise

    # --- instance removal and resends (task-instance pool sweeps, scheduler changes) --------

    def remove_instance_of_dead_em(self, record: InstanceRecord) -> None:
        """The instance's EM is dead: drop the instance and re-enqueue its task (no retry used)."""
        self.pool.discard([record.id])
        jcb = self.cache.get(record.job_id)
        if jcb is None:
            return
        try:
            tcb = jcb.live_block(record.task_id, record.id)
        except CacheStale:
            return
        tcb.remove_instance(record.id)
        self._enqueue(jcb, [record.task_id])
        metrics.LOST.inc()

    async def expire_hard_timeout(self, record: InstanceRecord) -> None:
        """The instance outlived its hard timeout plus grace: fail it, as an EM report would."""
        jcb = self.cache.get(record.job_id)
        if jcb is None:
            self.pool.discard([record.id])
            return
        try:
            await self._fail_instance(
                jcb, record.task_id, record.id, hard_timeout_message(record.timeout_policy)
            )
            metrics.TIMED_OUT.inc()
        except CacheStale:
            # A report or another removal got there first; the record is an orphan now.
            self.pool.discard([record.id])

    def redispatch_after_soft_timeout(self, record: InstanceRecord) -> None:
        """Enqueue the task of a slow instance once more; the instance keeps running."""
        record.soft_timeout_handled = True
        jcb = self.cache.get(record.job_id)
        if jcb is not None:
            self._enqueue(jcb, [record.task_id])
            metrics.SOFT_TIMEOUTS.inc()

    def is_live(self, record: InstanceRecord) -> bool:
        """True if the record's instance is still live in its task control block."""
        jcb = self.cache.get(record.job_id)
        if jcb is None:
            return False
        try:
            jcb.live_block(record.task_id, record.id)
        except (CacheStale, BadRequest):
            return False
        return True

    def is_offerable(self, entry: ReadyTask) -> bool:
        """True if ``entry``'s task may still be started: its job is cached and in the state
        that runs it, and the task is Ready (no live instance, no retry delay pending)."""
        jcb = self.cache.get(entry.job_id)
        if jcb is None:
            return False
        try:
            tcb = jcb.accepting(entry.task_id)
        except (CacheStale, BadRequest):
            return False
        return tcb.offerable

    def resend_ready_work(self) -> int:
        """Enqueue every ready task of every cached job; return how many entries were offered."""
        offered = 0
        for jcb in self.cache:
            ready = jcb.ready_work()
            self._enqueue(jcb, ready)
            offered += len(ready)
        return offered

    # --- internals -------------------------------------------------------------------------

    async def _record_regular_task(
        self,
        jcb: JobControlBlock,
        index: int,
        payloads: list[bytes],
        frame: bytes,
        reported: TaskInstanceId,
    ) -> list[TaskId]:
        """Without the job lock: persist a success that cannot end the job, apply it.

        The job cannot change state meanwhile (exclusive holders wait for the recording), so
        the apply, synchronous right after the write returns, always applies; a failed write
        applies nothing.
        """
        jcb.begin_recording(index)
        try:
            await self.persistence.record_task_outputs(jcb.id, index, frame)
            ready, dropped = jcb.apply_task_success(index, payloads, self.clock())
        finally:
            jcb.end_recording(index)
        self.pool.revoke(dropped, reported=reported)
        return ready

    async def _finish_regular_task(
        self,
        jcb: JobControlBlock,
        index: int,
        payloads: list[bytes],
        frame: bytes,
        reported: TaskInstanceId,
    ) -> list[TaskId]:
        """Holding the job: persist a regular task's success, apply it; return ready work."""
        if jcb.is_last_task():
            state, outputs = jcb.completion_outputs(index, payloads)
            records = await self._closing_records(jcb, self.clock(), ending=index)
            await self._transition(jcb, state, serialized_outputs=outputs, task_records=records)
            dropped = jcb.apply_completion(index, payloads, state, outputs, records)
            self.pool.revoke(dropped, reported=reported)
            if state is JobState.COMMIT_READY:
                return [TaskId.COMMIT]
            self._terminated(jcb)
            return []
        await self.persistence.record_task_outputs(jcb.id, index, frame)
        ready, dropped = jcb.apply_task_success(index, payloads, self.clock())
        self.pool.revoke(dropped, reported=reported)
        return ready

    async def _finish_termination_task(
        self, jcb: JobControlBlock, tcb: TaskControlBlock, reported: TaskInstanceId
    ) -> None:
        """Holding the job: the commit task ends the job Succeeded, the cleanup Cancelled."""
        target = JobState.SUCCEEDED if tcb is jcb.commit else JobState.CANCELLED
        await self._transition(jcb, target)
        self.pool.revoke(jcb.apply_termination_success(tcb, self.clock()), reported=reported)
        self._terminated(jcb)

    async def _fail_instance(
        self, jcb: JobControlBlock, task_id: TaskId, instance_id: TaskInstanceId, message: str
    ) -> None:
        tcb = jcb.live_block(task_id, instance_id)
        if tcb.retries_left > 0:
            metrics.RETRIES.inc()
            tcb.consume_retry(instance_id, summary_line(message))
            self.pool.discard([instance_id])
            self._retry_later(jcb, tcb)
            return
        async with jcb.exclusive():
            tcb = jcb.live_block(task_id, instance_id)
            now = self.clock()
            records = await self._closing_records(
                jcb, now, ending=task_id.position, ending_state=TaskState.FAILED, error=message
            )
            await self._transition(
                jcb, JobState.FAILED, error_message=message, task_records=records
            )
            dropped = jcb.apply_failure(tcb, message, now, records)
        self.pool.revoke(dropped, reported=instance_id)
        self._terminated(jcb)
        LOGGER.info(
            "job %s failed: task %s ran out of retries: %s",
            jcb.id,
            task_id,
            message,
            extra={"job_id": jcb.id, "task_id": str(task_id)},
        )

    async def _closing_records(
        self,
        jcb: JobControlBlock,
        now: float,
        *,
        ending: int | None = None,
        ending_state: TaskState = TaskState.SUCCEEDED,
        error: str | None = None,
    ) -> bytes | None:
        """The regular tasks' records to write with a change that drops the dataflow (see
        ``encode_final_records``); ``None`` if it is already dropped. The caller holds the job.

        A big job's are built in a worker thread: a million tasks take over half a second,
        which would stall every other request."""
        if jcb.dataflow is None:
            return None
        encode = functools.partial(
            encode_final_records,
            jcb.dataflow.tasks,
            now,
            ending=ending,
            ending_state=ending_state,
            error=error,
        )
        if len(jcb.dataflow.tasks) < RECORDS_OFFLOAD_TASKS:
            return encode()
        return await self.persistence.offload(encode)

    async def _transition(
        self,
        jcb: JobControlBlock,
        target: JobState,
        *,
        serialized_outputs: bytes | None = None,
        error_message: str | None = None,
        task_records: bytes | None = None,
    ) -> None:
        try:
            await self.persistence.transition_job(
                jcb.id,
                target,
                self.clock(),
                serialized_outputs=serialized_outputs,
                error_message=error_message,
                task_records=task_records,
            )
        except (InvalidJobState, JobNotFound) as exc:
            # The cache allowed the move and the database refused it: they disagree, which no
            # request can fix. Fail this request loudly and keep serving the others.
            LOGGER.error(
                "job %s: the database refused %s -> %s: %s",
                jcb.id,
                jcb.state.value,
                target.value,
                exc,
                extra={"job_id": jcb.id},
            )
            raise StorageInternalError(
                f"job {jcb.id}: the database refused the move from {jcb.state.value} to "
                f"{target.value}: {exc}"
            ) from exc

    def _check_session(self, session_id: SessionId) -> None:
        if session_id != self.session:
            raise StaleSession(self.session)

    def _cached_for_instances(self, job_id: JobId) -> JobControlBlock:
        jcb = self.cache.get(job_id)
        if jcb is None:
            raise CacheStale(
                StaleReason.JOB_NOT_IN_CACHE,
                f"job not found in cache: job {job_id} (unknown, or ended and evicted)",
            )
        return jcb

    async def _cached_job(
        self, job_id: JobId, operation: str, *expected: JobState
    ) -> JobControlBlock:
        """The cached job; for an uncached one, the error its database state calls for."""
        jcb = self.cache.get(job_id)
        if jcb is not None:
            await trio.lowlevel.checkpoint()
            return jcb
        status = await self.persistence.get_job_status(job_id)
        if status.state in expected:
            raise self._uncached(job_id, status.state)
        raise InvalidJobState(job_id, status.state, operation, expected)

    @staticmethod
    def _uncached(job_id: JobId, state: JobState) -> StorageInternalError:
        LOGGER.error("job %s is %s in the database but not in the job cache", job_id, state.value)
        return StorageInternalError(
            f"job {job_id} is {state.value} in the database but not in storage's job cache "
            "(it could not be recovered at startup; see the storage log)"
        )

    def _retry_later(self, jcb: JobControlBlock, tcb: TaskControlBlock) -> None:
        """Offer a failed task again once its retry delay has passed (at once if it is 0)."""
        retry = tcb.policy.max_num_retry - tcb.retries_left
        delay = tcb.policy.retry_delay.draw_seconds(retry, self.uniform)
        if delay <= 0:
            self._enqueue(jcb, [tcb.task_id])
            return
        tcb.retry_due = self.monotonic() + delay
        self.retry_timer.schedule(tcb.retry_due, jcb.id, tcb.task_id)
        LOGGER.info(
            "task %s of job %s retries in %.3f s (retry %d of %d)",
            tcb.task_id,
            jcb.id,
            delay,
            retry,
            tcb.policy.max_num_retry,
            extra={"job_id": jcb.id, "task_id": str(tcb.task_id), "retry_in_sec": delay},
        )

    def offer_retry(self, job_id: JobId, task_id: TaskId) -> None:
        """``RetryTimer``'s call: offer the task again unless the job or the task moved on (or
        it failed again meanwhile and waits for a later time)."""
        jcb = self.cache.get(job_id)
        if jcb is None:
            return
        try:
            tcb = jcb.accepting(task_id)
        except StorageError:
            return  # the job ended or moved on to its termination tasks
        if tcb.retry_due is None or tcb.retry_due > self.monotonic():
            return
        tcb.retry_due = None
        if tcb.state is TaskState.READY:
            self._enqueue(jcb, [task_id])

    def _enqueue(self, jcb: JobControlBlock, task_ids: Iterable[TaskId]) -> None:
        for task_id in task_ids:
            self.queue.put(jcb.resource_group_id, jcb.id, task_id)

    def _terminated(self, jcb: JobControlBlock) -> None:
        metrics.JOBS_FINISHED.labels(jcb.state.value).inc()
        self.cache.mark_terminated(jcb.id, self.monotonic())
        jcb.ended.set()
