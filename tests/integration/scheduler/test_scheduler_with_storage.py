"""The real scheduler between the real storage (SQLite) and a fake EM, over loopback gRPC."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from spider.core.task_graph import TaskGraph
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.storage import SessionManagementServiceStub
from spider.rpc import Channel, Endpoint, NotFoundError, connect_channel
from tests.fake_em import FakeEm, graph_runner
from tests.unit.storage.jobs import diamond, flat

from .conftest import StorageProcess, running_scheduler
from .jobs import job_state, submit_and_start

TEST_BUDGET = 30.0


@pytest.fixture
def storage_process(tmp_path: Path) -> StorageProcess:
    return StorageProcess(tmp_path / "storage.db")


def result_of(reply: scheduler_pb.NextTaskResponse) -> str:
    return reply.WhichOneof("result") or ""


async def current_session(storage: Channel) -> int:
    reply = await storage.call(SessionManagementServiceStub.get_session, common.Void())
    session: int = reply.session_id
    return session


async def run_until(em: FakeEm, job_ids: list[int]) -> None:
    storage = em.storage
    while True:
        states = [await job_state(storage, job_id) for job_id in job_ids]
        if all(state == storage_pb.JobState.SUCCEEDED for state in states):
            return
        await em.run_one(wait_ms=200)


async def test_jobs_run_to_success_through_the_scheduler(storage_process: StorageProcess) -> None:
    with trio.fail_after(TEST_BUDGET):
        async with (
            storage_process.run() as storage_port,
            running_scheduler(storage_port) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            graphs: dict[int, TaskGraph] = {}
            em = FakeEm(storage, graph_runner(graphs), scheduler)
            await em.register()
            diamond_job = await submit_and_start(storage, diamond(), [1, 2])
            graphs[diamond_job] = diamond()
            flat_job = await submit_and_start(storage, flat(3), [1, 2, 3])
            graphs[flat_job] = flat(3)

            await run_until(em, [diamond_job, flat_job])

            ran_jobs = [ran.job_id for ran in em.ran]
            assert ran_jobs.count(diamond_job) == 4
            assert ran_jobs.count(flat_job) == 4  # three tasks and the commit task
            ids = [ran.assignment_id for ran in em.ran]
            assert len(set(ids)) == len(ids)
            await em.shutdown()  # acknowledges the last assignment; nothing is left over
            with pytest.raises(NotFoundError):
                await em.shutdown()


async def test_a_job_wider_than_a_poll_page_runs_each_task_once(
    storage_process: StorageProcess,
) -> None:
    tasks = 40
    with trio.fail_after(TEST_BUDGET):
        async with (
            storage_process.run() as storage_port,
            running_scheduler(storage_port, page_size=7) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            graphs: dict[int, TaskGraph] = {}
            em = FakeEm(storage, graph_runner(graphs), scheduler)
            await em.register()
            job = await submit_and_start(storage, flat(tasks), list(range(tasks)))
            graphs[job] = flat(tasks)

            await run_until(em, [job])

            # 40 ready tasks reach the scheduler in pages of at most 7: every one is
            # dispatched, none twice (plus the commit task).
            assert [ran.job_id for ran in em.ran] == [job] * (tasks + 1)
            ids = [ran.assignment_id for ran in em.ran]
            assert len(set(ids)) == len(ids)


async def test_an_unacknowledged_assignment_is_rescheduled_after_shutdown(
    storage_process: StorageProcess,
) -> None:
    with trio.fail_after(TEST_BUDGET):
        async with (
            storage_process.run() as storage_port,
            running_scheduler(storage_port) as scheduler_port,
            connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
            connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
        ):
            job_id = await submit_and_start(storage, flat(1), [5])
            first = await scheduler.call(
                scheduler_pb.SchedulerServiceStub.next_task,
                scheduler_pb.NextTaskRequest(execution_manager_id=77, wait_time_ms=5000),
                deadline=10,
            )
            assert result_of(first) == "assignment"
            # The EM leaves without having taken responsibility for it.
            await scheduler.call(
                scheduler_pb.SchedulerServiceStub.shutdown,
                scheduler_pb.ShutdownRequest(execution_manager_id=77),
            )
            again = await scheduler.call(
                scheduler_pb.SchedulerServiceStub.next_task,
                scheduler_pb.NextTaskRequest(execution_manager_id=78, wait_time_ms=5000),
                deadline=10,
            )
            assert result_of(again) == "assignment"
            assert again.assignment.job_id == job_id
            assert again.assignment.task_id == first.assignment.task_id
            assert again.assignment.id != first.assignment.id


async def test_the_scheduler_survives_a_storage_restart(storage_process: StorageProcess) -> None:
    with trio.fail_after(TEST_BUDGET):
        async with storage_process.run() as storage_port:
            pass  # learn a free port for the storage to keep across its restart
        async with running_scheduler(storage_port) as scheduler_port:
            async with (
                storage_process.run(storage_port),
                connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
                connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
            ):
                graph = flat(2)
                graphs: dict[int, TaskGraph] = {}
                em = FakeEm(storage, graph_runner(graphs), scheduler)
                await em.register()
                before = await submit_and_start(storage, graph, [1, 2])
                graphs[before] = graph
                await run_until(em, [before])
                old_session = await current_session(storage)

            await trio.sleep(0.5)  # storage is down; the scheduler keeps serving EMs
            async with connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler:
                reply = await scheduler.call(
                    scheduler_pb.SchedulerServiceStub.next_task,
                    scheduler_pb.NextTaskRequest(execution_manager_id=1, wait_time_ms=100),
                )
                assert result_of(reply) == "no_task"

            async with (
                storage_process.run(storage_port),
                connect_channel(Endpoint("127.0.0.1", storage_port)) as storage,
                connect_channel(Endpoint("127.0.0.1", scheduler_port)) as scheduler,
            ):
                em = FakeEm(storage, graph_runner(graphs), scheduler)
                await em.register()
                after = await submit_and_start(storage, graph, [3, 4])
                graphs[after] = graph
                await run_until(em, [after])
                # Instances register only in storage's current session, so the job's success
                # shows the scheduler moved its assignments to the new one.
                assert await current_session(storage) > old_session
