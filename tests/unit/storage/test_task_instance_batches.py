"""``TaskInstanceBatchService`` over a real ``StorageState``: its items run concurrently through
the single handlers, so their writes share the group commit's transactions, and each item still
gets its own answer."""

from __future__ import annotations

from spider.core.ids import ExecutionManagerId, JobId, SessionId
from spider.core.task_id import TaskId
from spider.core.wire import decode_frame
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import Status
from spider.storage import Lane
from spider.storage.service import TaskInstanceBatchService, TaskInstanceManagementService
from spider.storage.state import StorageState

from .fake_database import FakeDatabase
from .jobs import create_state, drain, flat, frame_of, new_group, submission, task_result, unpack

TASKS = 8


async def started(database: FakeDatabase) -> tuple[StorageState, JobId, ExecutionManagerId]:
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(flat(TASKS), [1] * TASKS)
    )
    await state.lifecycle.start_job(job_id)
    await drain(state)
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    return state, job_id, em


async def test_a_batch_of_reports_shares_transactions_and_answers_each_item() -> None:
    database = FakeDatabase()
    state, job_id, em = await started(database)
    service = TaskInstanceBatchService(TaskInstanceManagementService(state))
    session = SessionId(state.session)
    registered = await service.register_task_instances(
        execution_pb.RegisterTaskInstancesRequest(
            registrations=[
                storage_pb.RegisterTaskInstanceRequest(
                    job_id=job_id,
                    task_id=common.TaskId(index=index),
                    execution_manager_id=em,
                    session_id=session,
                )
                for index in range(TASKS)
            ]
        )
    )
    assert [result.WhichOneof("result") for result in registered.results] == [
        "execution_context"
    ] * TASKS

    outcomes = []
    for index, result in enumerate(registered.results):
        inputs = [
            unpack(payload) for payload in decode_frame(result.execution_context.serialized_task_io)
        ]
        outcomes.append(
            execution_pb.TaskOutcome(
                success=storage_pb.ReportTaskSuccessRequest(
                    job_id=job_id,
                    task_id=common.TaskId(index=index),
                    task_instance_id=result.execution_context.task_instance_id,
                    execution_manager_id=em,
                    session_id=session,
                    serialized_outputs=frame_of(*task_result(index, inputs, 1)),
                )
            )
        )
    # The last item reports an instance nobody registered: rejected for itself only.
    outcomes.append(
        execution_pb.TaskOutcome(
            failure=storage_pb.ReportTaskFailureRequest(
                job_id=job_id,
                task_id=common.TaskId(index=0),
                task_instance_id=999_999,
                execution_manager_id=em,
                session_id=session,
                error_message="never registered",
            )
        )
    )
    before = database.calls["write_batch"]
    reported = await service.report_task_outcomes(
        execution_pb.ReportTaskOutcomesRequest(outcomes=outcomes)
    )

    codes = [status.code for status in reported.statuses]
    assert codes[:TASKS] == [Status.OK.value] * TASKS
    assert codes[TASKS] != Status.OK.value
    # Every success landed: the job's regular tasks are over and its commit task is ready.
    assert [entry.task_id for entry in await drain(state, Lane.COMMIT)] == [TaskId.COMMIT]
    # Concurrent items queue behind one another's commit: fewer batches than successes.
    assert database.calls["write_batch"] - before < TASKS
