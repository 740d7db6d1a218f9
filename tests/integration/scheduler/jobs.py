"""Jobs for the scheduler suites: submitted and started through storage's gRPC API."""

from __future__ import annotations

import itertools

from spider.core.task_graph import TaskGraph
from spider.proto import storage as storage_pb
from spider.rpc import Channel
from tests.unit.storage.jobs import submission

GROUP_NUMBERS = itertools.count()
JOBS = storage_pb.JobOrchestrationServiceStub


async def submit_and_start(storage: Channel, graph: TaskGraph, inputs: list[int]) -> int:
    """Add a resource group, register the job and start it; the job id."""
    group = await storage.call(
        storage_pb.ResourceGroupManagementServiceStub.add_resource_group,
        storage_pb.AddResourceGroupRequest(
            external_resource_group_id=f"group-{next(GROUP_NUMBERS)}", password=b"secret"
        ),
    )
    compressed_graph, compressed_inputs = submission(graph, inputs)
    job = await storage.call(
        JOBS.register_job,
        storage_pb.RegisterJobRequest(
            resource_group_id=group.resource_group_id,
            compressed_serialized_task_graph=compressed_graph,
            compressed_serialized_inputs=compressed_inputs,
        ),
    )
    await storage.call(JOBS.start_job, storage_pb.JobIdRequest(job_id=job.job_id))
    job_id: int = job.job_id
    return job_id


async def job_state(storage: Channel, job_id: int) -> storage_pb.JobState:
    reply = await storage.call(JOBS.get_job_state, storage_pb.JobIdRequest(job_id=job_id))
    return reply.state
