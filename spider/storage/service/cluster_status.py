"""``ClusterStatusService``: Spider-py's extension (``spider_py.status``), not Spider's protocol.

Served beside Spider's seven services; upstream clients never call it, and the client falls back
to what Spider's protocol exposes when a storage answers UNIMPLEMENTED.
"""

from __future__ import annotations

from spider.core.job_state import JobState
from spider.proto.spider_py import status as status_pb
from spider.storage.inbound_queue import Lane
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import job_state_to_proto
from spider.storage.state import StorageState


class ClusterStatusService(status_pb.ClusterStatusServiceBase):
    """``GetClusterStatus``: a snapshot of the cluster as this storage sees it."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def get_cluster_status(
        self, get_cluster_status_request: status_pb.GetClusterStatusRequest
    ) -> status_pb.GetClusterStatusResponse:
        """EMs from the database, queues and instances from memory, jobs from both."""
        with answering_storage_errors("GetClusterStatus"):
            status = await self._state.cluster_status()
        lanes = {
            lane: status_pb.LaneDepth(depth=lane_status.depth, capacity=lane_status.capacity)
            for lane, lane_status in status.lanes.items()
        }
        return status_pb.GetClusterStatusResponse(
            session_id=status.session_id,
            execution_managers=[
                status_pb.ExecutionManagerStatus(
                    execution_manager_id=em.id,
                    ip_address=em.ip_address,
                    alive=em.alive,
                    seconds_since_heartbeat=em.seconds_since_heartbeat,
                    running_task_instances=em.running_task_instances,
                )
                for em in status.execution_managers
            ],
            dead_execution_managers=status.dead_execution_managers,
            dead_execution_managers_listed_max=status.dead_execution_managers_listed_max,
            task_lane=lanes[Lane.TASK],
            commit_lane=lanes[Lane.COMMIT],
            cleanup_lane=lanes[Lane.CLEANUP],
            live_task_instances=status.live_task_instances,
            cached_jobs=_counts(status.cached_jobs),
            terminated_job_retention_sec=status.terminated_job_retention_sec,
            stored_jobs=_counts(status.stored_jobs),
            database=status_pb.DatabaseStatus(
                writable=status.database.writable,
                problem=status.database.problem,
                unwritable_for_sec=status.database.unwritable_for_sec,
                last_outage_sec=status.database.last_outage_sec,
                since_last_outage_sec=status.database.since_last_outage_sec,
            ),
            task_outcomes=[
                status_pb.TaskOutcomeCount(outcome=outcome, count=count)
                for outcome, count in sorted(status.task_outcomes.items())
            ],
        )


def _counts(by_state: dict[JobState, int]) -> list[status_pb.JobStateCount]:
    # In the states' lifecycle order, leaving out states with no jobs.
    return [
        status_pb.JobStateCount(state=job_state_to_proto(state), count=by_state[state])
        for state in JobState
        if by_state.get(state)
    ]
