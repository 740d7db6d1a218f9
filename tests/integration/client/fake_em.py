"""An execution manager stand-in: runs ready tasks through storage's gRPC API, in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import attrs

from spider.core import JobId, ResourceGroupId, TaskContext, TaskId, TaskInstanceId
from spider.proto import common
from spider.proto import storage as pb
from spider.rpc import Channel
from spider.tdl import TaskExecutionError, definition_of


@attrs.define(eq=False)
class FakeEm:
    """Registers with storage, then runs each ready task with the real ``@task`` function.

    Task failures are reported with the task's error text, as the real EM does.
    """

    channel: Channel
    tasks: dict[str, Callable[..., Any]]
    em_id: int = 0
    session_id: int = 0
    ran: list[str] = attrs.Factory(list)

    async def register(self) -> None:
        reply = await self.channel.call(
            pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
            pb.RegisterExecutionManagerRequest(ip_address="127.0.0.1"),
        )
        self.em_id = reply.registration.execution_manager_id
        self.session_id = reply.registration.session_id

    async def run_until(self, job_id: int) -> None:
        """Run ready tasks until ``job_id`` is terminal."""
        while True:
            state = await self.channel.call(
                pb.JobOrchestrationServiceStub.get_job_state, pb.JobIdRequest(job_id=job_id)
            )
            if state.state in (pb.JobState.SUCCEEDED, pb.JobState.FAILED, pb.JobState.CANCELLED):
                return
            batch = await self.channel.call(
                pb.InboundQueueServiceStub.poll_ready_tasks,
                pb.PollReadyTasksRequest(max_items=64, wait_ms=200),
            )
            for ready in batch.tasks.tasks:
                await self.run_task(ready)

    async def serve(self) -> NoReturn:
        """Run every ready task of every job, until cancelled."""
        while True:
            batch = await self.channel.call(
                pb.InboundQueueServiceStub.poll_ready_tasks,
                pb.PollReadyTasksRequest(max_items=64, wait_ms=200),
            )
            for ready in batch.tasks.tasks:
                await self.run_task(ready)

    async def run_task(self, ready: pb.ReadyTask) -> None:
        reply = await self.channel.call(
            pb.TaskInstanceManagementServiceStub.register_task_instance,
            pb.RegisterTaskInstanceRequest(
                job_id=ready.job_id,
                task_id=ready.task_id,
                execution_manager_id=self.em_id,
                session_id=self.session_id,
            ),
        )
        context = reply.execution_context
        name = context.tdl_context.task_func
        self.ran.append(name)
        raw_ctx = TaskContext(
            JobId(ready.job_id),
            TaskId.index(ready.task_id.index),
            TaskInstanceId(context.task_instance_id),
            ResourceGroupId(ready.resource_group_id),
        ).encode()
        try:
            outputs = definition_of(self.tasks[name]).execute(raw_ctx, context.serialized_task_io)
        except TaskExecutionError as error:
            await self.channel.call(
                pb.TaskInstanceManagementServiceStub.report_task_failure,
                pb.ReportTaskFailureRequest(
                    job_id=ready.job_id,
                    task_id=ready.task_id,
                    task_instance_id=context.task_instance_id,
                    execution_manager_id=self.em_id,
                    session_id=self.session_id,
                    error_message=str(error),
                ),
            )
            return
        await self.channel.call(
            pb.TaskInstanceManagementServiceStub.report_task_success,
            pb.ReportTaskSuccessRequest(
                job_id=ready.job_id,
                task_id=ready.task_id,
                task_instance_id=context.task_instance_id,
                execution_manager_id=self.em_id,
                session_id=self.session_id,
                serialized_outputs=outputs,
            ),
        )


VOID = common.Void()
