"""``TaskInstanceManagementService``: what EMs call to run a task and report how it went."""

from __future__ import annotations

from spider.core.ids import ExecutionManagerId, JobId, SessionId, TaskInstanceId
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import stored_id, task_id_from_proto
from spider.storage.state import StorageState


class TaskInstanceManagementService(storage_pb.TaskInstanceManagementServiceBase):
    """Task instances: registration, success and failure reports."""

    def __init__(self, state: StorageState) -> None:
        self._jobs = state.lifecycle

    async def register_task_instance(
        self, register_task_instance_request: storage_pb.RegisterTaskInstanceRequest
    ) -> storage_pb.RegisterTaskInstanceResponse:
        """A new instance of a ready task, with what the EM needs to run it."""
        request = register_task_instance_request
        task_id = task_id_from_proto(request.task_id)
        with answering_storage_errors("RegisterTaskInstance"):
            context = await self._jobs.register_task_instance(
                JobId(stored_id(request.job_id, "job_id")),
                task_id,
                ExecutionManagerId(stored_id(request.execution_manager_id, "execution_manager_id")),
                SessionId(stored_id(request.session_id, "session_id")),
            )
        return storage_pb.RegisterTaskInstanceResponse(
            execution_context=storage_pb.ExecutionContext(
                task_instance_id=context.task_instance_id,
                tdl_context=storage_pb.TdlContext(
                    package=context.tdl_context.package,
                    task_func=context.tdl_context.task_func,
                ),
                timeout_policy=storage_pb.TimeoutPolicy(
                    soft_timeout_ms=context.timeout_policy.soft_timeout_ms,
                    hard_timeout_ms=context.timeout_policy.hard_timeout_ms,
                ),
                serialized_task_io=context.serialized_task_io,
            )
        )

    async def report_task_success(
        self, report_task_success_request: storage_pb.ReportTaskSuccessRequest
    ) -> common.Void:
        """An instance succeeded with these outputs."""
        request = report_task_success_request
        task_id = task_id_from_proto(request.task_id)
        # The EM id is not looked up, as upstream (the instance id is), but it must be an id.
        stored_id(request.execution_manager_id, "execution_manager_id")
        with answering_storage_errors("ReportTaskSuccess"):
            await self._jobs.report_task_success(
                JobId(stored_id(request.job_id, "job_id")),
                task_id,
                TaskInstanceId(stored_id(request.task_instance_id, "task_instance_id")),
                SessionId(stored_id(request.session_id, "session_id")),
                request.serialized_outputs,
            )
        return common.Void()

    async def report_task_failure(
        self, report_task_failure_request: storage_pb.ReportTaskFailureRequest
    ) -> common.Void:
        """An instance failed with this message."""
        request = report_task_failure_request
        task_id = task_id_from_proto(request.task_id)
        # The EM id is not looked up, as upstream (the instance id is), but it must be an id.
        stored_id(request.execution_manager_id, "execution_manager_id")
        with answering_storage_errors("ReportTaskFailure"):
            await self._jobs.report_task_failure(
                JobId(stored_id(request.job_id, "job_id")),
                task_id,
                TaskInstanceId(stored_id(request.task_instance_id, "task_instance_id")),
                SessionId(stored_id(request.session_id, "session_id")),
                request.error_message,
            )
        return common.Void()
