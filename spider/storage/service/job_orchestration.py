"""``JobOrchestrationService``: what clients call to submit, start, cancel and observe jobs."""

from __future__ import annotations

from spider.core.ids import ResourceGroupId
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._group_gate import GroupGate
from spider.storage.service._unpack import job_id_from_proto, job_state_to_proto, stored_id
from spider.storage.state import StorageState


class JobOrchestrationService(storage_pb.JobOrchestrationServiceBase):
    """Jobs, from ``RegisterJob`` to their outputs or error."""

    def __init__(self, state: StorageState, gate: GroupGate) -> None:
        self._jobs = state.lifecycle
        self._gate = gate

    async def register_job(
        self, register_job_request: storage_pb.RegisterJobRequest
    ) -> storage_pb.RegisterJobResponse:
        """Validate and store a job as Ready."""
        request = register_job_request
        group_id = ResourceGroupId(stored_id(request.resource_group_id, "resource_group_id"))
        with answering_storage_errors("RegisterJob"):
            await self._gate.admit_group(group_id)
            job_id = await self._jobs.register_job(
                group_id,
                request.compressed_serialized_task_graph,
                request.compressed_serialized_inputs,
            )
        return storage_pb.RegisterJobResponse(job_id=job_id)

    async def start_job(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """Ready -> Running; its input tasks become ready."""
        job_id = job_id_from_proto(job_id_request.job_id)
        with answering_storage_errors("StartJob"):
            await self._gate.admit_job(job_id)
            state = await self._jobs.start_job(job_id)
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def cancel_job(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """Cancel a job; the answer is CleanupReady or Cancelled (or the terminal state)."""
        job_id = job_id_from_proto(job_id_request.job_id)
        with answering_storage_errors("CancelJob"):
            await self._gate.admit_job(job_id)
            state = await self._jobs.cancel_job(job_id)
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def get_job_state(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobStateResponse:
        """The job's current state."""
        job_id = job_id_from_proto(job_id_request.job_id)
        with answering_storage_errors("GetJobState"):
            await self._gate.admit_job(job_id)
            state = await self._jobs.get_job_state(job_id)
        return storage_pb.JobStateResponse(state=job_state_to_proto(state))

    async def get_job_outputs(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobOutputsResponse:
        """A Succeeded job's outputs (``SerializedTaskOutputs``)."""
        job_id = job_id_from_proto(job_id_request.job_id)
        with answering_storage_errors("GetJobOutputs"):
            await self._gate.admit_job(job_id)
            outputs = await self._jobs.get_job_outputs(job_id)
        return storage_pb.JobOutputsResponse(serialized_outputs=outputs)

    async def get_job_error(
        self, job_id_request: storage_pb.JobIdRequest
    ) -> storage_pb.JobErrorResponse:
        """A Failed job's error message."""
        job_id = job_id_from_proto(job_id_request.job_id)
        with answering_storage_errors("GetJobError"):
            await self._gate.admit_job(job_id)
            message = await self._jobs.get_job_error(job_id)
        return storage_pb.JobErrorResponse(error_message=message)
