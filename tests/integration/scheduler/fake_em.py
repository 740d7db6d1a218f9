"""A fake execution manager: the scheduler's real client protocol, tasks computed in-process."""

from __future__ import annotations

import itertools

import attrs

from spider.core.task_graph import TaskGraph
from spider.core.wire import decode_frame, encode_frame
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.rpc import Channel
from tests.unit.storage.jobs import pack, submission, task_result, unpack

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


def _outputs(graph: TaskGraph, task_id: common.TaskId, serialized_inputs: bytes) -> bytes:
    if task_id.WhichOneof("kind") != "index":
        return b""
    inputs = [unpack(payload) for payload in decode_frame(serialized_inputs)]
    num_outputs = len(graph.task(task_id.index).outputs)
    return encode_frame([pack(value) for value in task_result(task_id.index, inputs, num_outputs)])


@attrs.define(eq=False)
class FakeEm:
    """Pulls assignments from the scheduler, registers and reports them to storage."""

    storage: Channel
    scheduler: Channel
    em_id: int = 0
    ack: scheduler_pb.TaskAssignmentRecord | None = None
    ran: list[tuple[int, int]] = attrs.field(factory=list)  # (job, assignment id)

    async def register(self) -> None:
        reply = await self.storage.call(
            storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
            storage_pb.RegisterExecutionManagerRequest(ip_address="127.0.0.1"),
        )
        self.em_id = reply.registration.execution_manager_id

    async def run_one(self, graphs: dict[int, TaskGraph], wait_ms: int = 1000) -> bool:
        """One ``NextTask`` (acknowledging the previous assignment); False for no task."""
        request = scheduler_pb.NextTaskRequest(
            execution_manager_id=self.em_id, wait_time_ms=wait_ms
        )
        if self.ack is not None:
            request.prev_assignment.CopyFrom(self.ack)
        reply = await self.scheduler.call(
            scheduler_pb.SchedulerServiceStub.next_task, request, deadline=wait_ms / 1000 + 5
        )
        self.ack = None
        if reply.WhichOneof("result") != "assignment":
            return False
        assignment = reply.assignment
        self.ack = scheduler_pb.TaskAssignmentRecord(
            id=assignment.id, **{"from": assignment.scheduler_id}
        )
        context = (
            await self.storage.call(
                storage_pb.TaskInstanceManagementServiceStub.register_task_instance,
                storage_pb.RegisterTaskInstanceRequest(
                    job_id=assignment.job_id,
                    task_id=assignment.task_id,
                    execution_manager_id=self.em_id,
                    session_id=assignment.session_id,
                ),
            )
        ).execution_context
        await self.storage.call(
            storage_pb.TaskInstanceManagementServiceStub.report_task_success,
            storage_pb.ReportTaskSuccessRequest(
                job_id=assignment.job_id,
                task_id=assignment.task_id,
                task_instance_id=context.task_instance_id,
                execution_manager_id=self.em_id,
                session_id=assignment.session_id,
                serialized_outputs=_outputs(
                    graphs[assignment.job_id], assignment.task_id, context.serialized_task_io
                ),
            ),
        )
        self.ran.append((assignment.job_id, assignment.id))
        return True

    async def shutdown(self) -> None:
        records = [self.ack] if self.ack is not None else []
        await self.scheduler.call(
            scheduler_pb.SchedulerServiceStub.shutdown,
            scheduler_pb.ShutdownRequest(execution_manager_id=self.em_id, prev_assignments=records),
        )
        self.ack = None
