"""Crash recovery of the storage process: SIGKILL it, start it again on the same database.

One crash covers every kind of row: a Ready job (comes back Ready, can start), a Running job
half done (the finished task is not handed out again: hand-outs are counted), a CommitReady job
(only its commit runs, given the job outputs stored before the crash, which stay unchanged), a
CleanupReady job (only its cleanup runs, then it is Cancelled) and two rows that cannot be rebuilt
(a corrupt graph blob; CommitReady without job outputs): startup goes on and they are Failed
with the reason. EM work of the old session is refused as stale.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from spider.core.task_outputs import decode_task_outputs
from spider.storage.db import DatabaseConfig
from spider.storage.db._schema import jobs, task_outputs
from tests.integration.storage_service.grpc_client import (
    GrpcEm,
    StorageClient,
    StubModules,
    task_key,
    unpack,
)
from tests.integration.storage_service.grpc_client import task_outputs as outputs_for
from tests.unit.storage.jobs import diamond, flat, reference_job_outputs, submission

from .storage_process import StorageProcess, database_engine, running_storage, write_config

JOBS = "JobOrchestrationService"


def register(client: StorageClient, group: int, graph: object, inputs: list[int]) -> int:
    compressed_graph, compressed_inputs = submission(graph, inputs)  # type: ignore[arg-type]
    reply = client.sync(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=compressed_graph,
        compressed_serialized_inputs=compressed_inputs,
    )
    job_id: int = reply.job_id
    return job_id


def state_of(client: StorageClient, job_id: int) -> str:
    reply = client.sync(JOBS, "GetJobState", job_id=job_id)
    name: str = client.pb.storage.JobState.Name(reply.state)
    return name


def outputs_of(client: StorageClient, job_id: int) -> list[int]:
    reply = client.sync(JOBS, "GetJobOutputs", job_id=job_id)
    return [unpack(payload) for payload in decode_task_outputs(reply.serialized_outputs)]


def connect(stubs: StubModules, storage: StorageProcess) -> StorageClient:
    return StorageClient.connect(stubs, storage.port)


def test_jobs_in_every_recoverable_state_survive_a_crash(
    tmp_path: Path, storage_config: DatabaseConfig, stub_modules: StubModules
) -> None:
    config = write_config(tmp_path, storage_config)
    running_graph, commit_graph, cleanup_graph = diamond(), flat(2), flat(2)

    with running_storage("--config", config, cwd=tmp_path) as before:
        client = connect(stub_modules, before)
        group = client.sync(
            "ResourceGroupManagementService",
            "AddResourceGroup",
            external_resource_group_id="tenant",
            password=b"secret",
        ).resource_group_id
        ready_job = register(client, group, diamond(), [1, 2])
        running_job = register(client, group, running_graph, [3, 4])
        commit_job = register(client, group, commit_graph, [5, 6])
        cleanup_job = register(client, group, cleanup_graph, [7, 8])
        corrupt_job = register(client, group, diamond(), [9, 10])
        outputless_job = register(client, group, flat(1), [11])
        old_em = GrpcEm.register(client)

        client.sync(JOBS, "StartJob", job_id=running_job)
        [first] = old_em.poll()
        old_em.run({running_job: running_graph}, first)  # half done: A ran, B and C are ready
        client.sync(JOBS, "StartJob", job_id=commit_job)
        for entry in old_em.poll():
            if entry.job_id == commit_job:
                old_em.run({commit_job: commit_graph}, entry)
        old_em.poll("commit")  # handed to a scheduler that dies with storage
        client.sync(JOBS, "StartJob", job_id=cleanup_job)
        client.sync(JOBS, "CancelJob", job_id=cleanup_job)
        old_em.poll("cleanup")
        client.sync(JOBS, "StartJob", job_id=corrupt_job)
        client.sync(JOBS, "StartJob", job_id=outputless_job)
        for entry in old_em.poll():
            if entry.job_id == outputless_job:
                old_em.run({outputless_job: flat(1)}, entry)
        old_em.poll("commit")
        states = {
            job: state_of(client, job)
            for job in (ready_job, commit_job, cleanup_job, outputless_job)
        }
        client.close()
        before.kill()
    assert states == {
        ready_job: "READY",
        commit_job: "COMMIT_READY",
        cleanup_job: "CLEANUP_READY",
        outputless_job: "COMMIT_READY",
    }

    engine = database_engine(storage_config)
    with engine.begin() as connection:
        connection.execute(
            sa.update(jobs)
            .where(jobs.c.id == corrupt_job)
            .values(compressed_serialized_task_graph=b"\x28\xb5\x2f\xfd not a graph")
        )
        # A CommitReady row whose job outputs are gone (a half-applied manual repair, say).
        connection.execute(
            sa.update(jobs).where(jobs.c.id == outputless_job).values(serialized_job_outputs=None)
        )
    engine.dispose()

    with running_storage("--config", config, cwd=tmp_path) as after:
        client = connect(stub_modules, after)
        stale = None
        try:
            client.sync(
                "TaskInstanceManagementService",
                "RegisterTaskInstance",
                job_id=running_job,
                task_id=client.task_id(1),
                execution_manager_id=old_em.em_id,
                session_id=old_em.session_id,
            )
        except grpc.RpcError as error:
            stale = error.code()
        em = GrpcEm.register(client)
        assert em.session_id > old_em.session_id
        reasons = {
            job: (state_of(client, job), client.sync(JOBS, "GetJobError", job_id=job).error_message)
            for job in (corrupt_job, outputless_job)
        }
        assert state_of(client, ready_job) == "READY"
        # The commit task is handed out first, with the job outputs stored before the crash.
        [commit_entry] = em.poll("commit")
        assert commit_entry.job_id == commit_job
        commit_context = em.register_instance(commit_job, commit_entry.task_id)
        commit_inputs = [
            unpack(payload) for payload in decode_task_outputs(commit_context.serialized_task_io)
        ]
        em.succeed(commit_job, commit_entry.task_id, commit_context, b"")
        client.sync(JOBS, "StartJob", job_id=ready_job)

        em.run_until_idle(
            {
                ready_job: diamond(),
                running_job: running_graph,
                commit_job: commit_graph,
                cleanup_job: cleanup_graph,
            }
        )

        final = {
            job: state_of(client, job) for job in (ready_job, running_job, commit_job, cleanup_job)
        }
        results = {job: outputs_of(client, job) for job in (ready_job, running_job, commit_job)}
        client.close()
        status = after.stop(signal.SIGTERM)

    assert stale == grpc.StatusCode.NOT_FOUND
    prefix = "storage could not recover this job after a restart: "
    assert {job: state for job, (state, _) in reasons.items()} == {
        corrupt_job: "FAILED",
        outputless_job: "FAILED",
    }
    assert reasons[corrupt_job][1].startswith(
        prefix + "its stored task graph or inputs are invalid"
    )
    assert reasons[outputless_job][1] == prefix + "it is CommitReady but no job outputs are stored"
    assert commit_inputs == reference_job_outputs(commit_graph, [5, 6])
    assert final == {
        ready_job: "SUCCEEDED",
        running_job: "SUCCEEDED",
        commit_job: "SUCCEEDED",
        cleanup_job: "CANCELLED",
    }
    assert results == {
        ready_job: reference_job_outputs(diamond(), [1, 2]),
        running_job: reference_job_outputs(running_graph, [3, 4]),
        commit_job: reference_job_outputs(commit_graph, [5, 6]),
    }
    # Finished work is not handed out again: A of the running job, the commit job's tasks.
    handed_out = {
        job: sorted(
            key for (j, key), count in em.registered.items() if j == job for _ in range(count)
        )
        for job in (running_job, commit_job, cleanup_job)
    }
    assert handed_out == {
        running_job: ["1", "2", "3"],
        commit_job: ["commit"],
        cleanup_job: ["cleanup"],
    }
    assert {task_key(first.task_id)} == {"0"}
    assert status == 0


def test_concurrent_successes_answered_before_a_crash_are_all_kept(
    tmp_path: Path, storage_config: DatabaseConfig, stub_modules: StubModules
) -> None:
    """SIGKILL while many reports are in flight (sharing group commits): every success that
    was answered OK is in the database and is not handed out again after the restart."""
    config = write_config(tmp_path, storage_config)
    tasks = 96
    graph = flat(tasks)
    acknowledged: list[int] = []
    half_answered = threading.Event()

    with running_storage("--config", config, cwd=tmp_path) as before:
        client = connect(stub_modules, before)
        group = client.sync(
            "ResourceGroupManagementService",
            "AddResourceGroup",
            external_resource_group_id="tenant",
            password=b"secret",
        ).resource_group_id
        job = register(client, group, graph, list(range(tasks)))
        client.sync(JOBS, "StartJob", job_id=job)
        em = GrpcEm.register(client)
        started = [(entry, em.register_instance(job, entry.task_id)) for entry in em.poll()]
        assert len(started) == tasks

        def report(entry: Any, context: Any) -> None:
            index = entry.task_id.index
            outputs = outputs_for(graph, index, context.serialized_task_io)
            try:
                em.succeed(job, entry.task_id, context, outputs)
            except grpc.RpcError:
                return  # in flight when storage died: no promise was made
            acknowledged.append(index)
            if len(acknowledged) >= tasks // 2:
                half_answered.set()

        with ThreadPoolExecutor(max_workers=24) as reporters:
            for entry, context in started:
                reporters.submit(report, entry, context)
            assert half_answered.wait(timeout=60)
            before.kill()
        client.close()

    engine = database_engine(storage_config)
    with engine.begin() as connection:
        stored = set(
            connection.execute(
                sa.select(task_outputs.c.task_index).where(task_outputs.c.job_id == job)
            ).scalars()
        )
    engine.dispose()
    assert tasks // 2 <= len(acknowledged) < tasks  # killed with reports still in flight
    assert set(acknowledged) <= stored

    with running_storage("--config", config, cwd=tmp_path) as after:
        client = connect(stub_modules, after)
        em = GrpcEm.register(client)
        handed_out = {entry.task_id.index for entry in em.poll()}
        client.close()
        after.stop(signal.SIGTERM)
    assert handed_out == set(range(tasks)) - stored
