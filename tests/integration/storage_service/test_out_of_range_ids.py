"""Ids and numbers no database column can hold (>= 2^63) are client errors, never INTERNAL:
a job id in the job RPCs is NOT_FOUND (storage never issued it), any other is INVALID_ARGUMENT."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import trio

from tests.unit.storage.jobs import flat, submission

from .conftest import RunningStorage

JOBS = "JobOrchestrationService"
INSTANCES = "TaskInstanceManagementService"
Code = grpc.StatusCode


@pytest.mark.parametrize("huge", [2**63, 2**64 - 1])
async def test_ids_out_of_the_databases_range_are_client_errors(
    storage: RunningStorage, huge: int
) -> None:
    client = storage.client
    group = await storage.add_group()
    good_graph, good_inputs = submission(flat(1), [1])
    em = await storage.em()
    job = await client.call(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=good_graph,
        compressed_serialized_inputs=good_inputs,
    )
    await client.call(JOBS, "StartJob", job_id=job.job_id)
    [entry] = await trio.to_thread.run_sync(em.poll)
    context = await trio.to_thread.run_sync(em.register_instance, job.job_id, entry.task_id)
    em_fields = {"execution_manager_id": em.em_id, "session_id": em.session_id}
    instance = {
        "job_id": job.job_id,
        "task_id": entry.task_id,
        "task_instance_id": context.task_instance_id,
        **em_fields,
    }
    job_fields = {
        "resource_group_id": huge,
        "compressed_serialized_task_graph": good_graph,
        "compressed_serialized_inputs": good_inputs,
    }
    cases: list[tuple[str, str, dict[str, Any], grpc.StatusCode]] = [
        (JOBS, "RegisterJob", job_fields, Code.INVALID_ARGUMENT),
        *[
            (JOBS, method, {"job_id": huge}, Code.NOT_FOUND)
            for method in ("StartJob", "CancelJob", "GetJobState", "GetJobOutputs", "GetJobError")
        ],
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": huge, "task_id": entry.task_id, **em_fields},
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {
                "job_id": job.job_id,
                "task_id": entry.task_id,
                **em_fields,
                "execution_manager_id": huge,
            },
            Code.INVALID_ARGUMENT,
        ),
        (
            INSTANCES,
            "RegisterTaskInstance",
            {"job_id": job.job_id, "task_id": entry.task_id, **em_fields, "session_id": huge},
            Code.INVALID_ARGUMENT,
        ),
        *[
            (INSTANCES, method, {**instance, field: huge}, Code.INVALID_ARGUMENT)
            for method in ("ReportTaskSuccess", "ReportTaskFailure")
            for field in ("job_id", "task_instance_id", "execution_manager_id", "session_id")
        ],
        (
            "ResourceGroupManagementService",
            "VerifyResourceGroup",
            {"resource_group_id": huge, "password": b"secret"},
            Code.INVALID_ARGUMENT,
        ),
        (
            "ExecutionManagerLivenessService",
            "UpdateExecutionManagerHeartbeat",
            {"execution_manager_id": huge},
            Code.INVALID_ARGUMENT,
        ),
        ("JobSubmissionService", "SubmitJob", {"job": job_fields}, Code.INVALID_ARGUMENT),
        ("JobSubmissionService", "WaitForJob", {"job_id": huge}, Code.NOT_FOUND),
    ]

    wrong = []
    for service, method, fields, expected in cases:
        got = await client.status(service, method, **fields)
        if got != expected:
            wrong.append(f"{method}({sorted(fields)}): {got.name}, expected {expected.name}")
    assert wrong == []
    # Huge waits and counts are bounded, not errors.
    for lane in ("PollReadyTasks", "PollReadyCommitTasks", "PollReadyCleanupTasks"):
        await client.call("InboundQueueService", lane, max_items=huge, wait_ms=0)
