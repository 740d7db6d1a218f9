"""``StorageLink``'s lane polls: acknowledged when storage serves Spider-py's extension, upstream's
``PollReady*Tasks`` (logged once) when it answers UNIMPLEMENTED.

Storage is the real storage service over a fake database, or a fake serving only upstream's
polls, called in process through a ``LocalChannel``; time is Trio's mock clock.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider.core.ids import JobId, SessionId
from spider.core.task_graph import TaskGraph
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.proto.spider_py import inbound as inbound_pb
from spider.rpc import Endpoint, LocalChannel
from spider.scheduler.errors import StorageRejected
from spider.scheduler.storage_link import InboundLane, StorageLink, StorageLinkLost
from spider.storage import StorageState
from spider.storage.service import AcknowledgedInboundQueueService, storage_services
from tests.unit.storage.fake_database import FakeDatabase
from tests.unit.storage.jobs import create_state, new_group, submission, summing_task

ACKNOWLEDGED_POLL = inbound_pb.AcknowledgedInboundQueueServiceStub.poll_ready_tasks.route
UPSTREAM_POLL = storage_pb.InboundQueueServiceStub.poll_ready_tasks.route
WAIT_MS = 1_000


async def storage_with_job(tasks: int) -> tuple[StorageState, JobId]:
    database = FakeDatabase()
    state = await create_state(database)
    graph = TaskGraph()
    for _ in range(tasks):
        graph.insert_task(summing_task(1, 1))
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, [1] * tasks)
    )
    await state.lifecycle.start_job(job_id)
    return state, job_id


class RecordingInbound(AcknowledgedInboundQueueService):
    """The real service, recording each request; ``drop_next`` answers never arrive."""

    def __init__(self, state: StorageState) -> None:
        super().__init__(state)
        self.requests: list[inbound_pb.PollReadyTasksRequest] = []
        self.drop_next = 0

    async def poll_ready_tasks(
        self, poll_ready_tasks_request: inbound_pb.PollReadyTasksRequest
    ) -> inbound_pb.PollReadyTasksResponse:
        self.requests.append(poll_ready_tasks_request)
        answer = await super().poll_ready_tasks(poll_ready_tasks_request)
        if self.drop_next:
            self.drop_next -= 1
            await trio.sleep_forever()  # until the caller's deadline: the answer is lost
        return answer


async def test_each_poll_acknowledges_the_lanes_previous_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await storage_with_job(2)
    service = RecordingInbound(state)
    link = StorageLink(LocalChannel([service], 5.0), call_deadline=5.0)
    first = await link.poll(InboundLane.TASK, 10, WAIT_MS)
    assert [entry.task_id.position for entry in first.entries] == [0, 1]
    assert first.session == state.session
    second = await link.poll(InboundLane.TASK, 10, WAIT_MS)
    assert second.entries == ()  # acknowledged: not offered again
    sent = [(r.lane, r.session_id, r.acknowledged_batch) for r in service.requests]
    assert sent == [
        (inbound_pb.Lane.LANE_TASK, 0, 0),
        (inbound_pb.Lane.LANE_TASK, state.session, 1),
    ]
    assert link.acknowledged[InboundLane.COMMIT] == (SessionId(0), 0)


async def test_an_answer_lost_to_the_deadline_is_offered_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await storage_with_job(3)
    service = RecordingInbound(state)
    service.drop_next = 1
    link = StorageLink(LocalChannel([service], 5.0), call_deadline=5.0)
    with pytest.raises(StorageLinkLost):
        await link.poll(InboundLane.TASK, 2, WAIT_MS)
    again = await link.poll(InboundLane.TASK, 10, WAIT_MS)
    assert [entry.task_id.position for entry in again.entries] == [0, 1, 2]


class UpstreamInbound(storage_pb.InboundQueueServiceBase):
    """An upstream storage's polls: one lane, no acknowledgement, no extension."""

    def __init__(self, entries: list[storage_pb.ReadyTask]) -> None:
        self.entries = entries

    async def poll_ready_tasks(
        self, poll_ready_tasks_request: storage_pb.PollReadyTasksRequest
    ) -> storage_pb.PollReadyTasksResponse:
        taken, self.entries = self.entries, []
        return storage_pb.PollReadyTasksResponse(
            tasks=storage_pb.ReadyTasks(session_id=7, tasks=taken)
        )


class UpstreamRegistration(storage_pb.SchedulerRegistrationServiceBase):
    def __init__(self) -> None:
        self.session = 7

    async def register_scheduler(
        self, register_scheduler_request: storage_pb.RegisterSchedulerRequest
    ) -> storage_pb.RegisterSchedulerResponse:
        return storage_pb.RegisterSchedulerResponse(
            registration=storage_pb.SchedulerRegistration(scheduler_id=1, session_id=self.session)
        )


def ready_task(job: int) -> storage_pb.ReadyTask:
    return storage_pb.ReadyTask(resource_group_id=1, job_id=job, task_id=common.TaskId(index=0))


async def test_against_upstream_storage_the_link_polls_upstreams_rpcs_and_says_so_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    registration = UpstreamRegistration()
    channel = LocalChannel([UpstreamInbound([ready_task(3)]), registration], 5.0)
    link = StorageLink(channel, call_deadline=5.0)
    await link.register(Endpoint("127.0.0.1", 1))
    with caplog.at_level(logging.WARNING, logger="spider.scheduler.storage"):
        first = await link.poll(InboundLane.TASK, 10, 0)
        second = await link.poll(InboundLane.TASK, 10, 0)
    assert [entry.job_id for entry in first.entries] == [3]
    assert second.entries == ()
    assert channel.calls[ACKNOWLEDGED_POLL] == 1  # asked once, then upstream's polls only
    assert channel.calls[UPSTREAM_POLL] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "acknowledged inbound poll" in warnings[0]
    # A storage registering this scheduler in another session may be another build: ask again.
    registration.session = 8
    await link.register(Endpoint("127.0.0.1", 1))
    await link.poll(InboundLane.TASK, 10, 0)
    assert channel.calls[ACKNOWLEDGED_POLL] == 2


async def test_a_server_without_either_poll_is_not_storage() -> None:
    link = StorageLink(LocalChannel([], 5.0), call_deadline=5.0)
    with pytest.raises(StorageRejected):
        await link.poll(InboundLane.CLEANUP, 10, 0)


async def test_the_real_storage_serves_the_acknowledged_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, _ = await storage_with_job(1)
    channel = LocalChannel(storage_services(state), 5.0)
    link = StorageLink(channel, call_deadline=5.0)
    batch = await link.poll(InboundLane.TASK, 10, WAIT_MS)
    assert len(batch.entries) == 1
    assert channel.calls[UPSTREAM_POLL] == 0
