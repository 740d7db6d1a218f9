"""``JobOrchestrationService``: what clients call to submit, start, cancel and observe jobs."""

from __future__ import annotations

from spider.core.ids import ResourceGroupId
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import job_id_from_proto, job_state_to_proto, stored_id
from spider.storage.state import StorageState


class JobOrchestrationService(storage_pb.JobOrchestrationServiceBase):
    """Jobs, from ``RegisterJob`` to their outputs or error."""

    def __init__(self, state: StorageState) -> None:
        self._jobs = state.lifecycle

    async def register_job(
        self, register_job_request: storage_pb.RegisterJobRequest
    ) -> storage_pb.RegisterJobResponse:
        """Validate and store a job as Ready."""
        request = register_job_request
        with answering_storage_errors("RegisterJob"):
            job_id = await self._jobs.register_job(
                ResourceGroupId(stored_id(request.resource_group_id, "resource_group_id")),
                request.compressed_serialized_task_graph,
                request.compressed_serialized_inputs,
            )
        return storage_pb.RegisterJobResponse(job_id=job_id)

    async def start_job(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """Ready -> Running; its input tasks become ready."""
        with answering_storage_errors("StartJob"):
            state = await self._jobs.start_job(job_id_from_proto(job_id_request.job_id))
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def cancel_job(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """Cancel a job; the answer is CleanupReady or Cancelled (or the terminal state)."""
        with answering_storage_errors("CancelJob"):
            state = await self._jobs.cancel_job(job_id_from_proto(job_id_request.job_id))
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def get_job_state(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """The job's current state."""
        with answering_storage_errors("GetJobState"):
            state = await self._jobs.get_job_state(job_id_from_proto(job_id_request.job_id))
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def get_job_outputs(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobOutputsResponse:
        """A Succeeded job's outputs (``SerializedTaskOutputs``)."""
        with answering_storage_errors("GetJobOutputs"):
            outputs = await self._jobs.get_job_outputs(job_id_from_proto(job_id_request.job_id))
        return storage_pb.JobOutputsResponse(serialized_outputs=outputs)

    async def get_job_error(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobErrorResponse:
        """A Failed job's error message."""
        with answering_storage_errors("GetJobError"):
            message = await self._jobs.get_job_error(job_id_from_proto(job_id_request.job_id))
        return storage_pb.JobErrorResponse(error_message=message)
