"""Recovery: rebuild the job cache from the database when storage starts.

Every job in a recoverable state is re-validated and cached, without enqueuing anything (the
service enqueues ready work with ``resend_ready_work`` once it serves, so the scheduler can
drain the lanes):

* **Ready**: the graph and inputs; it still needs StartJob.
* **Running**: the graph and inputs, plus every task output persisted by ``record_task_outputs``.
  Those tasks stay Succeeded with their slots filled, counters are recomputed, and only the
  rest runs again (upstream restarted every task, docs/upstream.md#recovery-at-startup). A
  Running job whose tasks are all recorded is completed on the spot.
* **CommitReady**: needs a commit task and the stored job outputs; only the commit runs.
* **CleanupReady**: needs a cleanup task; only the cleanup runs.

A row that cannot be rebuilt (a corrupt graph or inputs, corrupt task outputs, CommitReady
without outputs or commit task, CleanupReady without cleanup task) is logged and marked Failed
with the reason as its error message; recovery goes on with the next job (upstream aborted
startup). A database outage during recovery propagates: storage cannot start without it.
"""

from __future__ import annotations

import collections
import logging

import attrs

from spider.core.errors import CodecError
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_graph import JobSubmission, TaskGraph, decode_job_submission
from spider.core.task_outputs import decode_task_outputs
from spider.core.wire import decode_frame
from spider.storage.dataflow import JobInputs
from spider.storage.db.interface import JobRecord
from spider.storage.job_control import JobControlBlock
from spider.storage.job_lifecycle import JobLifecycle

LOGGER = logging.getLogger("spider.storage.recovery")


@attrs.frozen
class RecoveryReport:
    """What recovery found: jobs cached per state, and jobs it had to fail."""

    recovered: dict[JobState, int]
    failed: tuple[tuple[JobId, str], ...]
    completed: tuple[JobId, ...] = ()
    """Running jobs whose tasks had all finished, moved on to CommitReady or Succeeded."""


class _Unrecoverable(Exception):
    pass


async def recover(lifecycle: JobLifecycle) -> RecoveryReport:
    """Cache every recoverable job of the database; fail the ones that cannot be rebuilt."""
    records = await lifecycle.persistence.recoverable_jobs()
    recovered: collections.Counter[JobState] = collections.Counter()
    failed: list[tuple[JobId, str]] = []
    completed: list[JobId] = []
    for record in records:
        try:
            jcb = await _rebuild(lifecycle, record)
        except _Unrecoverable as exc:
            reason = str(exc)
            await _mark_failed(lifecycle, record, reason)
            failed.append((record.id, reason))
            continue
        if jcb is None or jcb.state is not record.state:
            completed.append(record.id)
        if jcb is not None:
            lifecycle.cache.insert(jcb)
            recovered[jcb.state] += 1
    report = RecoveryReport(dict(recovered), tuple(failed), tuple(completed))
    LOGGER.info(
        "recovered %d job(s) (%s); %d could not be recovered and were marked failed",
        sum(recovered.values()),
        ", ".join(
            f"{state.value}: {count}"
            for state, count in sorted(
                recovered.items(), key=lambda item: list(JobState).index(item[0])
            )
        )
        or "none",
        len(failed),
    )
    return report


async def _rebuild(lifecycle: JobLifecycle, record: JobRecord) -> JobControlBlock | None:
    try:
        submission: JobSubmission = await lifecycle.persistence.offload(
            decode_job_submission, record.compressed_task_graph, record.compressed_inputs
        )
    except CodecError as exc:
        raise _Unrecoverable(f"its stored task graph or inputs are invalid: {exc}") from exc
    graph = submission.task_graph
    if record.state is JobState.READY:
        return _build(record, submission, JobState.READY)
    if record.state is JobState.RUNNING:
        stored = await lifecycle.persistence.load_task_outputs(record.id)
        jcb = _build(record, submission, JobState.RUNNING)
        assert jcb.dataflow is not None
        jcb.dataflow.restore(_decode_finished(graph, stored))
        if jcb.dataflow.unfinished == 0:
            return await _complete(lifecycle, jcb, record, submission)
        return jcb
    if record.state is JobState.COMMIT_READY:
        if graph.commit_task is None:
            raise _Unrecoverable("it is CommitReady but its task graph has no commit task")
        if record.serialized_outputs is None:
            raise _Unrecoverable("it is CommitReady but no job outputs are stored")
        try:
            outputs = decode_task_outputs(record.serialized_outputs)
        except CodecError as exc:
            raise _Unrecoverable(f"its stored job outputs are invalid: {exc}") from exc
        if len(outputs) != graph.num_graph_outputs:
            raise _Unrecoverable(
                f"its stored job outputs hold {len(outputs)} value(s), the graph has "
                f"{graph.num_graph_outputs} output(s)"
            )
        return _build(record, submission, JobState.COMMIT_READY, record.serialized_outputs)
    if record.state is JobState.CLEANUP_READY:
        if graph.cleanup_task is None:
            raise _Unrecoverable("it is CleanupReady but its task graph has no cleanup task")
        return _build(record, submission, JobState.CLEANUP_READY)
    raise _Unrecoverable(f"state {record.state.value} is not recoverable")


def _decode_finished(graph: TaskGraph, stored: dict[int, bytes]) -> dict[int, list[bytes]]:
    finished = {}
    for index, frame in stored.items():
        if not 0 <= index < len(graph):
            raise _Unrecoverable(f"outputs are stored for task {index}, which the graph lacks")
        declared = len(graph.task(index).outputs)
        try:
            finished[index] = decode_frame(frame, expected=declared)
        except CodecError as exc:
            raise _Unrecoverable(f"the stored outputs of task {index} are invalid: {exc}") from exc
    return finished


def _build(
    record: JobRecord, submission: JobSubmission, state: JobState, outputs: bytes | None = None
) -> JobControlBlock:
    # A Ready job keeps its inputs compressed until it is started, as a new one does.
    inputs = (
        JobInputs(record.compressed_inputs)
        if state is JobState.READY
        else JobInputs.decoded(submission.inputs)
    )
    return JobControlBlock.build(
        record.id,
        record.resource_group_id,
        state,
        submission.task_graph,
        inputs,
        serialized_outputs=outputs,
    )


async def _complete(
    lifecycle: JobLifecycle, jcb: JobControlBlock, record: JobRecord, submission: JobSubmission
) -> JobControlBlock | None:
    """Every task of a Running job had finished: commit the outputs now."""
    assert jcb.dataflow is not None
    last = len(jcb.dataflow.tasks) - 1
    last_outputs = jcb.dataflow.outputs[last]
    assert last_outputs is not None
    state, outputs = jcb.completion_outputs(last, last_outputs)
    await lifecycle.persistence.transition_job(
        jcb.id, state, lifecycle.clock(), serialized_outputs=outputs
    )
    if state is JobState.COMMIT_READY:
        return _build(record, submission, state, outputs)
    return None


async def _mark_failed(lifecycle: JobLifecycle, record: JobRecord, reason: str) -> None:
    message = f"storage could not recover this job after a restart: {reason}"
    LOGGER.error(
        "job %s (%s) cannot be recovered and is marked failed: %s",
        record.id,
        record.state.value,
        reason,
        extra={"job_id": record.id},
    )
    await lifecycle.persistence.transition_job(
        record.id, JobState.FAILED, lifecycle.clock(), error_message=message
    )
