"""Spider-py's execution extension over loopback gRPC: the real scheduler's ``NextTasks`` and the
real storage's ``TaskInstanceBatchService`` (SQLite) driven by a batching fake EM."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import (
    Channel,
    Endpoint,
    NotFoundError,
    RpcError,
    Status,
    connect_channel,
)
from tests.fake_em import graph_outputs
from tests.unit.storage.jobs import flat

from .conftest import StorageProcess, running_scheduler
from .jobs import job_state, submit_and_start

TEST_BUDGET = 30.0
DISPATCH = execution_pb.TaskDispatchServiceStub
BATCHES = execution_pb.TaskInstanceBatchServiceStub


@pytest.fixture
def storage_process(tmp_path: Path) -> StorageProcess:
    return StorageProcess(tmp_path / "storage.db")


async def register_em(storage: Channel) -> int:
    reply = await storage.call(
        storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
        storage_pb.RegisterExecutionManagerRequest(ip_address="127.0.0.1"),
    )
    em_id: int = reply.registration.execution_manager_id
    return em_id


def registration(
    em_id: int, assignment: scheduler_pb.SchedulerAssignment
) -> storage_pb.RegisterTaskInstanceRequest:
    return storage_pb.RegisterTaskInstanceRequest(
        job_id=assignment.job_id,
        task_id=assignment.task_id,
        execution_manager_id=em_id,
        session_id=assignment.session_id,
    )


async def test_a_job_runs_on_batched_calls_and_every_assignment_is_acknowledged(
    storage_process: StorageProcess,
) -> None:
    graph = flat(6)
    with trio.fail_after(TEST_BUDGET):
        async with (
            storage_process.run() as storage_port,
            running_scheduler(storage_port) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            em_id = await register_em(storage)
            job_id = await submit_and_start(storage, graph, [1, 2, 3, 4, 5, 6])
            acks: list[scheduler_pb.TaskAssignmentRecord] = []
            ran: list[int] = []
            largest_batch = 0
            while await job_state(storage, job_id) != storage_pb.JobState.SUCCEEDED:
                reply = await scheduler.call(
                    DISPATCH.next_tasks,
                    execution_pb.NextTasksRequest(
                        execution_manager_id=em_id,
                        prev_assignments=acks,
                        wait_time_ms=200,
                        max_tasks=4,
                    ),
                    deadline=5,
                )
                acks = []
                assignments = reply.assignments
                largest_batch = max(largest_batch, len(assignments))
                if not assignments:
                    continue
                registered = await storage.call(
                    BATCHES.register_task_instances,
                    execution_pb.RegisterTaskInstancesRequest(
                        registrations=[registration(em_id, a) for a in assignments]
                    ),
                )
                assert len(registered.results) == len(assignments)
                outcomes = []
                for assignment, result in zip(assignments, registered.results, strict=True):
                    assert result.WhichOneof("result") == "execution_context"
                    context = result.execution_context
                    acks.append(
                        scheduler_pb.TaskAssignmentRecord(
                            id=assignment.id, **{"from": assignment.scheduler_id}
                        )
                    )
                    outcomes.append(
                        execution_pb.TaskOutcome(
                            success=storage_pb.ReportTaskSuccessRequest(
                                job_id=assignment.job_id,
                                task_id=assignment.task_id,
                                task_instance_id=context.task_instance_id,
                                execution_manager_id=em_id,
                                session_id=assignment.session_id,
                                serialized_outputs=graph_outputs(
                                    graph, assignment.task_id, context.serialized_task_io
                                ),
                            )
                        )
                    )
                    ran.append(assignment.id)
                reported = await storage.call(
                    BATCHES.report_task_outcomes,
                    execution_pb.ReportTaskOutcomesRequest(outcomes=outcomes),
                )
                assert [s.code for s in reported.statuses] == [0] * len(outcomes)
            assert len(ran) == 7  # six tasks and the commit task
            assert len(set(ran)) == len(ran)
            assert largest_batch > 1
            # Shutdown with the last acknowledgements leaves nothing to reschedule.
            await scheduler.call(
                scheduler_pb.SchedulerServiceStub.shutdown,
                scheduler_pb.ShutdownRequest(execution_manager_id=em_id, prev_assignments=acks),
            )
            with pytest.raises(NotFoundError):
                await scheduler.call(
                    scheduler_pb.SchedulerServiceStub.shutdown,
                    scheduler_pb.ShutdownRequest(execution_manager_id=em_id),
                )


async def test_each_item_gets_the_status_its_single_rpc_would_have(
    storage_process: StorageProcess,
) -> None:
    with trio.fail_after(TEST_BUDGET):
        async with (
            storage_process.run() as storage_port,
            running_scheduler(storage_port) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            em_id = await register_em(storage)
            await submit_and_start(storage, flat(1), [5])
            reply = await scheduler.call(
                DISPATCH.next_tasks,
                execution_pb.NextTasksRequest(
                    execution_manager_id=em_id, wait_time_ms=5000, max_tasks=4
                ),
                deadline=10,
            )
            (assignment,) = reply.assignments
            good = registration(em_id, assignment)
            no_task_id = storage_pb.RegisterTaskInstanceRequest(
                job_id=assignment.job_id,
                execution_manager_id=em_id,
                session_id=assignment.session_id,
            )
            old_session = registration(em_id, assignment)
            old_session.session_id = assignment.session_id + 7
            single: list[int] = []
            for request in (no_task_id, old_session):
                with pytest.raises(RpcError) as raised:
                    await storage.call(
                        storage_pb.TaskInstanceManagementServiceStub.register_task_instance,
                        request,
                    )
                single.append(raised.value.status.value)
            registered = await storage.call(
                BATCHES.register_task_instances,
                execution_pb.RegisterTaskInstancesRequest(
                    registrations=[no_task_id, good, old_session]
                ),
            )
            first, second, third = registered.results
            assert [first.error.code, third.error.code] == single
            assert first.error.code == Status.INVALID_ARGUMENT.value
            assert second.WhichOneof("result") == "execution_context"
            assert second.execution_context.task_instance_id > 0
            assert third.error.message

            # An unknown instance is rejected for itself only.
            reported = await storage.call(
                BATCHES.report_task_outcomes,
                execution_pb.ReportTaskOutcomesRequest(
                    outcomes=[
                        execution_pb.TaskOutcome(
                            failure=storage_pb.ReportTaskFailureRequest(
                                job_id=assignment.job_id,
                                task_id=assignment.task_id,
                                task_instance_id=second.execution_context.task_instance_id + 99,
                                execution_manager_id=em_id,
                                session_id=assignment.session_id,
                                error_message="no such instance",
                            )
                        ),
                        execution_pb.TaskOutcome(),
                    ]
                ),
            )
            unknown, empty = reported.statuses
            assert unknown.code != 0
            assert empty.code == Status.INVALID_ARGUMENT.value
