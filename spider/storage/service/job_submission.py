"""``JobSubmissionService``: Spider-py's jobs extension (``spider_py.jobs``), not Spider's protocol.

``SubmitJob`` registers and starts a job in one transaction; ``WaitForJob`` is a long poll that
ends with the job's terminal state and its outputs or error; ``RunJob`` is both in one call.
Served beside Spider's seven services; the client falls back to RegisterJob, StartJob and
GetJobState polling when a storage answers UNIMPLEMENTED. Every proto message is built or read in
the converters at the bottom.
"""

from __future__ import annotations

import logging

import attrs

from spider.core.ids import JobId, ResourceGroupId
from spider.proto import storage as storage_pb
from spider.proto.spider_py import jobs as jobs_pb
from spider.storage.errors import StorageError
from spider.storage.job_lifecycle import JobOutcome
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._group_gate import GroupGate
from spider.storage.service._unpack import job_id_from_proto, job_state_to_proto, stored_id
from spider.storage.state import StorageState

LOGGER = logging.getLogger("spider.storage")


class JobSubmissionService(jobs_pb.JobSubmissionServiceBase):
    """``SubmitJob`` and ``WaitForJob``: a job's round trip in two calls; ``RunJob``: in one."""

    def __init__(self, state: StorageState, gate: GroupGate) -> None:
        self._state = state
        self._gate = gate

    async def submit_job(
        self, submit_job_request: jobs_pb.SubmitJobRequest
    ) -> storage_pb.RegisterJobResponse:
        """RegisterJob, plus StartJob if ``start``, in one transaction."""
        submission = submission_from_proto(submit_job_request)
        with answering_storage_errors("SubmitJob"):
            job_id = await self._register(submission)
        return job_id_to_proto(job_id)

    async def run_job(self, run_job_request: jobs_pb.RunJobRequest) -> jobs_pb.RunJobResponse:
        """SubmitJob with ``start``, then WaitForJob on the new job, in one call."""
        submission, wait_sec = run_from_proto(run_job_request)
        with answering_storage_errors("RunJob"):
            job_id = await self._register(submission)
        # The job exists from here on: a failed wait must not hide its id from the caller, who
        # could not tell it from a job never registered and must not submit it again.
        try:
            outcome = await self._state.wait_for_job(job_id, wait_sec)
        except StorageError as error:
            LOGGER.warning(
                "RunJob registered job %d but could not wait for it (%s); answering its id "
                "alone, the client asks WaitForJob",
                job_id,
                error,
                extra={"job_id": job_id},
            )
            return run_answer_to_proto(job_id, None)
        return run_answer_to_proto(job_id, outcome)

    async def _register(self, submission: Submission) -> JobId:
        await self._gate.admit_group(submission.resource_group_id)
        return await self._state.lifecycle.register_job(
            submission.resource_group_id,
            submission.compressed_task_graph,
            submission.compressed_inputs,
            start=submission.start,
        )

    async def wait_for_job(
        self, wait_for_job_request: jobs_pb.WaitForJobRequest
    ) -> jobs_pb.WaitForJobResponse:
        """The job's state once terminal (with outputs or error), or when the wait ends."""
        job_id, wait_sec = wait_from_proto(wait_for_job_request)
        with answering_storage_errors("WaitForJob"):
            await self._gate.admit_job(job_id)
            outcome = await self._state.wait_for_job(job_id, wait_sec)
        return outcome_to_proto(outcome)


# --- converters: the only code here that touches proto messages --------------------------------


@attrs.frozen
class Submission:
    """A ``SubmitJobRequest`` as domain values."""

    resource_group_id: ResourceGroupId
    compressed_task_graph: bytes
    compressed_inputs: bytes
    start: bool


def submission_from_proto(request: jobs_pb.SubmitJobRequest) -> Submission:
    """The submission a ``SubmitJobRequest`` carries (an unset ``job`` is an empty one, which
    fails validation as RegisterJob's would)."""
    return _submission(request.job, start=request.start)


def _submission(job: storage_pb.RegisterJobRequest, *, start: bool) -> Submission:
    return Submission(
        ResourceGroupId(stored_id(job.resource_group_id, "resource_group_id")),
        job.compressed_serialized_task_graph,
        job.compressed_serialized_inputs,
        start,
    )


def run_from_proto(request: jobs_pb.RunJobRequest) -> tuple[Submission, float]:
    """The started submission a ``RunJobRequest`` carries, and the seconds to wait for it."""
    return _submission(request.job, start=True), request.wait_ms / 1000


def run_answer_to_proto(job_id: JobId, outcome: JobOutcome | None) -> jobs_pb.RunJobResponse:
    """``RunJobResponse``: the job's id, and its outcome unless the wait failed."""
    if outcome is None:
        return jobs_pb.RunJobResponse(job_id=job_id)
    return jobs_pb.RunJobResponse(job_id=job_id, outcome=outcome_to_proto(outcome))


def job_id_to_proto(job_id: JobId) -> storage_pb.RegisterJobResponse:
    """``SubmitJob``'s answer, RegisterJob's message."""
    return storage_pb.RegisterJobResponse(job_id=job_id)


def wait_from_proto(request: jobs_pb.WaitForJobRequest) -> tuple[JobId, float]:
    """The job and the seconds the caller asks to wait."""
    return job_id_from_proto(request.job_id), request.wait_ms / 1000


def outcome_to_proto(outcome: JobOutcome) -> jobs_pb.WaitForJobResponse:
    """``WaitForJobResponse``: outputs and error are left unset when there are none."""
    return jobs_pb.WaitForJobResponse(
        state=job_state_to_proto(outcome.state),
        serialized_outputs=outcome.serialized_outputs or b"",
        error_message=outcome.error_message or "",
    )
