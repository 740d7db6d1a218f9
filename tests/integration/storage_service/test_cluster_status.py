"""Spider-py's ClusterStatusService over real gRPC (grpcio stubs), on SQLite and MariaDB."""

from __future__ import annotations

import collections
import time
from typing import Any

import attrs
import trio

from spider.storage.instance_gc import sweep_task_instances
from tests.unit.storage.jobs import flat, submission

from .conftest import TEST_CONFIG, RunningStorage, StorageLauncher
from .grpc_client import task_outputs

STATUS = "ClusterStatusService"
JOBS = "JobOrchestrationService"
LIVENESS = "ExecutionManagerLivenessService"
STALE_CUTOFF = TEST_CONFIG.runtime.task_instance_pool.execution_manager_stale_cutoff_sec


@attrs.define
class WallClock:
    """The storage's wall clock, which a test moves forward to make EMs go stale."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def cluster_status(storage: RunningStorage) -> Any:
    return await storage.client.call(STATUS, "GetClusterStatus")


def jobs_by_state(storage: RunningStorage, counts: Any) -> dict[str, int]:
    names = storage.client.pb.storage.JobState
    return {names.Name(entry.state): entry.count for entry in counts}


def execution_managers(status: Any) -> dict[int, tuple[bool, int]]:
    """EM id -> (alive, running task instances)."""
    return {
        em.execution_manager_id: (em.alive, em.running_task_instances)
        for em in status.execution_managers
    }


def outcomes(status: Any) -> collections.Counter[str]:
    return collections.Counter({item.outcome: item.count for item in status.task_outcomes})


async def test_an_idle_storage_reports_empty_queues_and_no_jobs(storage: RunningStorage) -> None:
    status = await cluster_status(storage)

    assert status.session_id == storage.state.session
    assert list(status.execution_managers) == []
    assert status.dead_execution_managers == 0
    queue = TEST_CONFIG.runtime.inbound_queue
    assert (status.task_lane.depth, status.task_lane.capacity) == (0, queue.task_capacity)
    assert (status.commit_lane.depth, status.commit_lane.capacity) == (0, queue.commit_capacity)
    assert (status.cleanup_lane.depth, status.cleanup_lane.capacity) == (
        0,
        queue.cleanup_capacity,
    )
    assert status.live_task_instances == 0
    assert list(status.cached_jobs) == list(status.stored_jobs) == []
    retention = TEST_CONFIG.runtime.job_cache_gc.terminated_job_retention_sec
    assert status.terminated_job_retention_sec == retention


async def test_status_follows_execution_managers_queues_and_jobs(
    launcher: StorageLauncher,
) -> None:
    clock = WallClock()
    async with launcher.run(clock=clock) as storage:
        client = storage.client
        first = await storage.em()
        second = await storage.em()
        status = await cluster_status(storage)
        assert execution_managers(status) == {first.em_id: (True, 0), second.em_id: (True, 0)}
        assert {em.ip_address for em in status.execution_managers} == {"127.0.0.1"}
        # The outcome counter is the process's: compare readings, not absolute values.
        outcomes_before = outcomes(status)

        graph = flat(3)
        compressed_graph, compressed_inputs = submission(graph, [1, 2, 3])
        job = await client.call(
            JOBS,
            "RegisterJob",
            resource_group_id=await storage.add_group(),
            compressed_serialized_task_graph=compressed_graph,
            compressed_serialized_inputs=compressed_inputs,
        )
        job_id = job.job_id
        status = await cluster_status(storage)
        assert jobs_by_state(storage, status.cached_jobs) == {"READY": 1}
        assert jobs_by_state(storage, status.stored_jobs) == {"READY": 1}
        assert status.task_lane.depth == 0

        await client.call(JOBS, "StartJob", job_id=job_id)
        status = await cluster_status(storage)
        assert status.task_lane.depth == 3  # the queue fills
        assert jobs_by_state(storage, status.cached_jobs) == {"RUNNING": 1}

        [first_entry] = await trio.to_thread.run_sync(lambda: first.poll(max_items=1))
        [second_entry] = await trio.to_thread.run_sync(lambda: second.poll(max_items=1))
        first_context = await trio.to_thread.run_sync(
            first.register_instance, job_id, first_entry.task_id
        )
        await trio.to_thread.run_sync(second.register_instance, job_id, second_entry.task_id)
        status = await cluster_status(storage)
        assert status.task_lane.depth == 1  # and drains
        assert status.live_task_instances == 2
        assert execution_managers(status) == {first.em_id: (True, 1), second.em_id: (True, 1)}

        # Time passes; only the first EM heartbeats, so the sweep declares the second dead and
        # re-enqueues its instance's task.
        clock.offset += STALE_CUTOFF + 5
        await client.call(
            LIVENESS, "UpdateExecutionManagerHeartbeat", execution_manager_id=first.em_id
        )
        await sweep_task_instances(storage.state.lifecycle)
        status = await cluster_status(storage)
        assert execution_managers(status) == {first.em_id: (True, 1), second.em_id: (False, 0)}
        assert status.dead_execution_managers == 1
        assert [em.execution_manager_id for em in status.execution_managers] == [
            first.em_id,
            second.em_id,
        ]  # Alive first
        heard = {
            em.execution_manager_id: em.seconds_since_heartbeat for em in status.execution_managers
        }
        assert heard[first.em_id] < STALE_CUTOFF <= heard[second.em_id]
        assert status.live_task_instances == 1
        assert status.task_lane.depth == 2

        outputs = task_outputs(graph, first_entry.task_id.index, first_context.serialized_task_io)
        await trio.to_thread.run_sync(
            first.succeed, job_id, first_entry.task_id, first_context, outputs
        )
        await trio.to_thread.run_sync(first.run_until_idle, {job_id: graph})
        status = await cluster_status(storage)
        assert jobs_by_state(storage, status.cached_jobs) == {"SUCCEEDED": 1}
        assert jobs_by_state(storage, status.stored_jobs) == {"SUCCEEDED": 1}
        finished = outcomes(status) - outcomes_before
        # Three tasks and the commit task succeeded; the dead EM's instance was lost.
        assert dict(finished) == {"succeeded": 4, "lost": 1}
        assert (status.task_lane.depth, status.commit_lane.depth) == (0, 0)
        assert status.live_task_instances == 0
        assert execution_managers(status) == {first.em_id: (True, 0), second.em_id: (False, 0)}

        # Once evicted from the job cache, a terminated job is only counted in the database.
        retention = TEST_CONFIG.runtime.job_cache_gc.terminated_job_retention_sec
        storage.state.collector.monotonic = lambda: trio.current_time() + retention
        evicted, _ = await storage.state.collector.collect()
        assert evicted == [job_id]
        status = await cluster_status(storage)
        assert jobs_by_state(storage, status.cached_jobs) == {}
        assert jobs_by_state(storage, status.stored_jobs) == {"SUCCEEDED": 1}
