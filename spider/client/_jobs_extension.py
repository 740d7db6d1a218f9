"""The client's side of Spider-py's jobs extension (``spider_py.jobs``): its messages, built and
read here and nowhere else, so the rest of the client deals in domain values only."""

from __future__ import annotations

import attrs

from spider.client._state import job_state_from_proto
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.proto import storage as storage_pb
from spider.proto.spider_py import jobs as jobs_pb

_Service = jobs_pb.JobSubmissionServiceStub
SUBMIT_JOB = _Service.submit_job
"""RegisterJob, and StartJob when asked, in one call and one storage transaction."""
WAIT_FOR_JOB = _Service.wait_for_job
"""The long poll: answers once the job is terminal, or when the wait it was given ends."""
RUN_JOB = _Service.run_job
"""SubmitJob with start, then WaitForJob on the new job, in one call."""


@attrs.frozen
class WaitAnswer:
    """A ``WaitForJobResponse`` as domain values."""

    state: JobState
    serialized_outputs: bytes
    """``SerializedTaskOutputs``; meaningful only when ``state`` is Succeeded."""
    error_message: str


def submit_job_request(
    resource_group: int, compressed_graph: bytes, compressed_inputs: bytes, *, start: bool
) -> jobs_pb.SubmitJobRequest:
    """``SubmitJobRequest``: RegisterJob's request, and whether to start the job too."""
    return jobs_pb.SubmitJobRequest(
        job=_register_request(resource_group, compressed_graph, compressed_inputs), start=start
    )


def run_job_request(
    resource_group: int, compressed_graph: bytes, compressed_inputs: bytes, wait_sec: float
) -> jobs_pb.RunJobRequest:
    """``RunJobRequest``: RegisterJob's request, and how long to wait for the job to end."""
    return jobs_pb.RunJobRequest(
        job=_register_request(resource_group, compressed_graph, compressed_inputs),
        wait_ms=_whole_ms(wait_sec),
    )


def _register_request(
    resource_group: int, compressed_graph: bytes, compressed_inputs: bytes
) -> storage_pb.RegisterJobRequest:
    return storage_pb.RegisterJobRequest(
        resource_group_id=resource_group,
        compressed_serialized_task_graph=compressed_graph,
        compressed_serialized_inputs=compressed_inputs,
    )


def run_answer(reply: jobs_pb.RunJobResponse) -> tuple[JobId, WaitAnswer | None]:
    """The job ``RunJob`` started, and what its wait said (``None``: storage could not wait)."""
    outcome = wait_answer(reply.outcome) if reply.HasField("outcome") else None
    return JobId(reply.job_id), outcome


def submitted_job_id(reply: storage_pb.RegisterJobResponse) -> JobId:
    """The id ``SubmitJob`` answered."""
    return JobId(reply.job_id)


def wait_for_job_request(job_id: int, wait_sec: float) -> jobs_pb.WaitForJobRequest:
    """``WaitForJobRequest`` for a wait of ``wait_sec`` seconds (whole milliseconds)."""
    return jobs_pb.WaitForJobRequest(job_id=job_id, wait_ms=_whole_ms(wait_sec))


def _whole_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def wait_answer(reply: jobs_pb.WaitForJobResponse) -> WaitAnswer:
    """What a ``WaitForJobResponse`` says; an unspecified state is a ``StorageServerError``."""
    return WaitAnswer(
        job_state_from_proto(reply.state), reply.serialized_outputs, reply.error_message
    )
