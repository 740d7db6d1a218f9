"""A lane poll's answer that never reaches the scheduler, over real loopback gRPC.

Storage takes the ready task off its lane and then does not answer until the scheduler's deadline
for the call has passed (gRPC cancels the handler then): the answer is lost as in a partition.
Upstream's polls lose the task until the scheduler registers again; with Spider-py's acknowledged
poll the scheduler's next poll does not acknowledge that answer, so storage offers the task again
and the job still succeeds.
"""

from __future__ import annotations

from pathlib import Path

import trio

from spider.core.task_graph import TaskGraph
from spider.proto import storage as storage_pb
from spider.proto.spider_py import inbound as inbound_pb
from spider.rpc import Endpoint, ServiceBase, connect_channel
from spider.storage import StorageState
from spider.storage.service import AcknowledgedInboundQueueService, storage_services
from tests.fake_em import FakeEm, graph_runner
from tests.unit.storage.jobs import flat

from .conftest import StorageProcess, running_scheduler
from .jobs import job_state, submit_and_start

TEST_BUDGET = 30.0
CALL_DEADLINE = 0.5
"""The scheduler's deadline beyond a poll's wait: short, so the lost answer costs little."""


class LosingFirstAnswer(AcknowledgedInboundQueueService):
    """Storage's real service, except that its first answer with entries is never sent."""

    def __init__(self, state: StorageState) -> None:
        super().__init__(state)
        self.lost: list[inbound_pb.PollReadyTasksResponse] = []

    async def poll_ready_tasks(
        self, poll_ready_tasks_request: inbound_pb.PollReadyTasksRequest
    ) -> inbound_pb.PollReadyTasksResponse:
        answer = await super().poll_ready_tasks(poll_ready_tasks_request)
        if answer.tasks and not self.lost:
            self.lost.append(answer)
            await trio.sleep_forever()  # cancelled when the scheduler's deadline passes
        return answer


async def test_a_ready_task_whose_poll_answer_was_lost_still_runs(tmp_path: Path) -> None:
    losing: list[LosingFirstAnswer] = []

    def services(state: StorageState) -> list[ServiceBase]:
        losing.append(LosingFirstAnswer(state))
        return [
            losing[-1] if isinstance(service, AcknowledgedInboundQueueService) else service
            for service in storage_services(state)
        ]

    with trio.fail_after(TEST_BUDGET):
        async with (
            StorageProcess(tmp_path / "storage.db").run(services=services) as storage_port,
            running_scheduler(storage_port, call_deadline=CALL_DEADLINE) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            graphs: dict[int, TaskGraph] = {}
            em = FakeEm(storage, graph_runner(graphs), scheduler)
            await em.register()
            job = await submit_and_start(storage, flat(1), [4])
            graphs[job] = flat(1)
            while await job_state(storage, job) != storage_pb.JobState.SUCCEEDED:
                await em.run_one(wait_ms=200)

            [lost] = losing[0].lost
            assert [task.job_id for task in lost.tasks] == [job]
            assert [ran.job_id for ran in em.ran] == [job, job]  # the task, then the commit
