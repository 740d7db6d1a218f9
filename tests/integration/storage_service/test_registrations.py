"""Resource groups, EM liveness, scheduler registration and sessions over real gRPC."""

from __future__ import annotations

import grpc
import trio

from tests.unit.storage.jobs import flat, submission

from .conftest import RunningStorage, StorageLauncher
from .grpc_client import task_key

GROUPS = "ResourceGroupManagementService"
LIVENESS = "ExecutionManagerLivenessService"
SCHEDULERS = "SchedulerRegistrationService"


async def test_resource_groups_are_added_and_verified(storage: RunningStorage) -> None:
    client = storage.client
    group = await storage.add_group("tenant", b"right")

    await client.call(GROUPS, "VerifyResourceGroup", resource_group_id=group, password=b"right")

    for group_id, password in ((group, b"wrong"), (group + 1000, b"right")):
        code = await client.status(
            GROUPS, "VerifyResourceGroup", resource_group_id=group_id, password=password
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
    duplicate = await client.status(
        GROUPS, "AddResourceGroup", external_resource_group_id="tenant", password=b"x"
    )
    assert duplicate == grpc.StatusCode.ALREADY_EXISTS
    unknown_owner = await client.status(
        "JobOrchestrationService",
        "RegisterJob",
        resource_group_id=group + 1000,
        compressed_serialized_task_graph=submission(flat(1), [1])[0],
        compressed_serialized_inputs=submission(flat(1), [1])[1],
    )
    assert unknown_owner == grpc.StatusCode.UNAUTHENTICATED


async def test_execution_managers_register_and_heartbeat(storage: RunningStorage) -> None:
    client = storage.client
    first = await client.call(LIVENESS, "RegisterExecutionManager", ip_address="10.0.0.1")
    second = await client.call(LIVENESS, "RegisterExecutionManager", ip_address="::1")
    em_id = first.registration.execution_manager_id

    heartbeat = await client.call(
        LIVENESS, "UpdateExecutionManagerHeartbeat", execution_manager_id=em_id
    )

    assert second.registration.execution_manager_id != em_id  # ids are never reused
    assert heartbeat.session_id == first.registration.session_id == storage.state.session
    unknown = await client.status(
        LIVENESS, "UpdateExecutionManagerHeartbeat", execution_manager_id=em_id + 1000
    )
    assert unknown == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_replacement_scheduler_gets_the_ready_work_again(
    storage: RunningStorage,
) -> None:
    client = storage.client
    first = await client.call(SCHEDULERS, "RegisterScheduler", host="10.0.0.5", port=50052)
    group = await storage.add_group()
    graph, inputs = submission(flat(3), [1, 2, 3])
    job = await client.call(
        "JobOrchestrationService",
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    )
    await client.call("JobOrchestrationService", "StartJob", job_id=job.job_id)
    em = await storage.em()
    drained = await trio.to_thread.run_sync(em.poll)
    assert sorted(task_key(entry.task_id) for entry in drained) == ["0", "1", "2"]

    second = await client.call(SCHEDULERS, "RegisterScheduler", host="scheduler-2", port=6000)

    resent = await trio.to_thread.run_sync(em.poll)
    assert sorted(task_key(entry.task_id) for entry in resent) == ["0", "1", "2"]
    assert second.registration.scheduler_id != first.registration.scheduler_id
    assert second.registration.session_id == storage.state.session
    listed = await client.call(SCHEDULERS, "GetSchedulers")
    assert [(s.scheduler_id, s.host, s.port) for s in listed.schedulers.schedulers] == [
        (second.registration.scheduler_id, "scheduler-2", 6000)
    ]


async def test_a_restart_starts_a_new_session_and_rejects_the_old_one(
    launcher: StorageLauncher,
) -> None:
    async with launcher.run() as before:
        group = await before.add_group()
        graph, inputs = submission(flat(1), [1])
        job = await before.client.call(
            "JobOrchestrationService",
            "RegisterJob",
            resource_group_id=group,
            compressed_serialized_task_graph=graph,
            compressed_serialized_inputs=inputs,
        )
        await before.client.call("JobOrchestrationService", "StartJob", job_id=job.job_id)
        old_em = await before.em()
        old_session = (
            await before.client.call("SessionManagementService", "GetSession")
        ).session_id

    async with launcher.run() as after:
        new_session = (await after.client.call("SessionManagementService", "GetSession")).session_id
        stale = await after.client.status(
            "TaskInstanceManagementService",
            "RegisterTaskInstance",
            job_id=job.job_id,
            task_id=after.client.task_id(0),
            execution_manager_id=old_em.em_id,
            session_id=old_session,
        )
        heartbeat = await after.client.call(
            LIVENESS, "UpdateExecutionManagerHeartbeat", execution_manager_id=old_em.em_id
        )

    assert new_session > old_session
    assert stale == grpc.StatusCode.NOT_FOUND
    assert heartbeat.session_id == new_session  # how an EM learns of the restart
