"""``GroupCommit``: concurrent writes share transactions, and none is answered before its own.

The batches run on an instrumented stand-in for ``StorageDatabase.write_batch`` whose commit
blocks until the test releases it, so "answered before the commit" would show as a result.
The job-level tests check that reports for many tasks of one job are no longer serialised on
the job's lock: their writes arrive at the database together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs
import outcome
import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId, JobId
from spider.core.job_state import JobState
from spider.core.task_id import TaskId
from spider.storage import CacheStale, InstanceContext, StorageState, StorageUnavailable
from spider.storage.db.interface import UnknownJob
from spider.storage.db.writes import BatchOutcome, RecordTaskOutputs, Write, write_each
from spider.storage.group_commit import GroupCommit

from .fake_database import FakeDatabase
from .jobs import create_state, drain, flat, frame_of, new_group, submission


def outputs(index: int) -> RecordTaskOutputs:
    return RecordTaskOutputs(JobId(1), index, frame_of(index))


@attrs.define(eq=False)
class GatedDatabase:
    """Runs each batch on ``FakeDatabase``, then holds the "commit" until ``release``."""

    database: FakeDatabase = attrs.field(factory=FakeDatabase)
    batches: list[list[int]] = attrs.field(factory=list)
    gates: list[trio.Event] = attrs.field(factory=list)

    opened: bool = False

    async def write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        self.batches.append([w.task_index for w in writes if isinstance(w, RecordTaskOutputs)])
        gate = trio.Event()
        self.gates.append(gate)
        if not self.opened:
            await gate.wait()
        return write_each(self.database, writes)

    def release(self) -> None:
        self.gates[-1].set()

    @contextmanager
    def failsafe(self) -> Iterator[None]:
        """On a failed assertion, stop gating, so the shielded batches end and so does the test."""
        try:
            yield
        except BaseException:
            self.opened = True
            for gate in self.gates:
                gate.set()
            raise


@pytest.fixture
def gated() -> GatedDatabase:
    gated = GatedDatabase()
    group = new_group(gated.database)
    assert gated.database.insert_job(group, b"graph", b"inputs", 0.0) == JobId(2)
    return gated


def record(index: int) -> RecordTaskOutputs:
    return RecordTaskOutputs(JobId(2), index, frame_of(index))


async def test_concurrent_writes_share_commits_and_none_is_answered_before_its_own(
    gated: GatedDatabase,
) -> None:
    group = GroupCommit(gated.write_batch)
    answered: list[int] = []

    async def write(index: int) -> None:
        await group.commit(record(index))
        answered.append(index)

    async with trio.open_nursery() as nursery:
        with gated.failsafe():
            for index in range(10):
                nursery.start_soon(write, index)
            await trio.testing.wait_all_tasks_blocked()
            # The first write leads alone; the other nine queued behind its commit.
            [[leader]] = gated.batches
            assert answered == []
            assert group.queued == 9

            gated.release()
            await trio.testing.wait_all_tasks_blocked()
            assert answered == [leader]
            assert len(gated.batches) == 2
            assert sorted(gated.batches[1]) == sorted(set(range(10)) - {leader})
            assert len(answered) == 1  # the nine wait for their own commit

            gated.release()
    assert sorted(answered) == list(range(10))
    assert (group.counters.transactions, group.counters.writes) == (10, 10)  # the fake: 1 each
    assert gated.database.task_outputs[JobId(2)] == {i: frame_of(i) for i in range(10)}


async def test_a_failing_write_fails_alone(gated: GatedDatabase) -> None:
    group = GroupCommit(gated.write_batch)
    results: dict[int, object] = {}

    async def write(job: int, index: int) -> None:
        try:
            await group.commit(RecordTaskOutputs(JobId(job), index, b""))
            results[index] = "ok"
        except UnknownJob:
            results[index] = "not found"

    async with trio.open_nursery() as nursery:
        with gated.failsafe():
            nursery.start_soon(write, 2, 0)
            await trio.testing.wait_all_tasks_blocked()
            for index, job in ((1, 2), (2, 99), (3, 2)):
                nursery.start_soon(write, job, index)
            await trio.testing.wait_all_tasks_blocked()
            gated.release()
            await trio.testing.wait_all_tasks_blocked()
            gated.release()

    assert gated.batches[0] == [0]
    assert sorted(gated.batches[1]) == [1, 2, 3]
    assert results == {0: "ok", 1: "ok", 2: "not found", 3: "ok"}
    assert sorted(gated.database.task_outputs[JobId(2)]) == [0, 1, 3]


async def test_a_write_cancelled_while_queued_is_withdrawn(gated: GatedDatabase) -> None:
    group = GroupCommit(gated.write_batch)
    async with trio.open_nursery() as nursery:
        with gated.failsafe():
            nursery.start_soon(group.commit, record(0))
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(0.01) as scope:
                await group.commit(record(1))
            assert scope.cancelled_caught
            assert group.queued == 0
            gated.release()
    assert gated.batches == [[0]]
    assert list(gated.database.task_outputs[JobId(2)]) == [0]


async def test_a_write_cancelled_inside_a_batch_returns_its_result_first(
    gated: GatedDatabase,
) -> None:
    group = GroupCommit(gated.write_batch)
    returned: list[object] = []
    scope = trio.CancelScope()

    async def write() -> None:
        with scope:
            returned.append(await group.commit(record(0)))
            # The caller applies the result here; its next checkpoint raises Cancelled.
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        with gated.failsafe():
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert returned == []  # still waiting for its commit, shielded
            gated.release()
    assert scope.cancelled_caught
    assert returned == [None]
    assert JobId(2) in gated.database.task_outputs


async def test_a_broken_batch_runner_fails_every_write_of_its_batch() -> None:
    async def broken(writes: Sequence[Write]) -> BatchOutcome:
        await trio.lowlevel.checkpoint()
        return BatchOutcome((outcome.Value(None),) * (len(writes) + 1), 1)

    group = GroupCommit(broken)
    with pytest.raises(AssertionError, match="outcomes for 1 writes"):
        await group.commit(record(0))
    assert group.counters.transactions == 0


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt, which pytest would take for the user's."""


class EmptyBatch(BaseException):
    """A batch with no writes: what a caller left unsettled would lead, again and again."""


async def test_an_interrupted_batch_still_settles_every_write_it_took() -> None:
    gate = trio.Event()
    sizes: list[int] = []

    async def write_batch(writes: Sequence[Write]) -> BatchOutcome:
        sizes.append(len(writes))
        if not writes:
            raise EmptyBatch
        if len(sizes) == 1:
            await gate.wait()
            return BatchOutcome((outcome.Value(None),) * len(writes), 1)
        raise Interrupted

    group = GroupCommit(write_batch)
    results: dict[int, object] = {}

    async def write(index: int) -> None:
        try:
            results[index] = await group.commit(record(index))
        except (RuntimeError, Interrupted) as exc:
            results[index] = type(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 0)
            await trio.testing.wait_all_tasks_blocked()
            # Both queue behind the first batch and go into the second, which is interrupted.
            nursery.start_soon(write, 1)
            nursery.start_soon(write, 2)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    assert sizes == [1, 2]
    assert results[0] is None
    # The leader sees the interruption; its batch-mate a clear error, not an endless wait.
    assert sorted([results[1], results[2]], key=str) == sorted([Interrupted, RuntimeError], key=str)


# --- job level: reports of one job's tasks are written together ----------------------------


@attrs.define(eq=False)
class BatchSizes(FakeDatabase):
    """``FakeDatabase`` that remembers how many writes each batch carried."""

    sizes: list[int] = attrs.field(factory=list)

    def write_batch(self, writes: Sequence[Write]) -> BatchOutcome:
        self.sizes.append(len(writes))
        return super().write_batch(writes)


@attrs.frozen
class StartedJob:
    state: StorageState
    job_id: JobId
    em: ExecutionManagerId
    contexts: list[InstanceContext]

    async def report(self, index: int) -> None:
        await self.state.lifecycle.report_task_success(
            self.job_id,
            TaskId.index(index),
            self.contexts[index].task_instance_id,
            self.state.session,
            frame_of(index),
        )


async def start_job(database: FakeDatabase, tasks: int) -> StartedJob:
    """A started job of ``tasks`` independent tasks, each with a registered instance."""
    state = await create_state(database)
    graph, inputs = submission(flat(tasks), list(range(tasks)))
    job_id = await state.lifecycle.register_job(new_group(database), graph, inputs)
    await state.lifecycle.start_job(job_id)
    em = (await state.register_execution_manager("127.0.0.1")).execution_manager_id
    entries = sorted(await drain(state), key=lambda entry: entry.task_id.position or 0)
    contexts = [
        await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
        for entry in entries
    ]
    return StartedJob(state, job_id, em, contexts)


async def test_reports_for_many_tasks_of_one_job_share_a_commit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = BatchSizes()
    tasks = 20
    job = await start_job(database, tasks)
    assert len(job.contexts) == tasks
    database.sizes.clear()

    async with trio.open_nursery() as nursery:
        for index in range(tasks):
            nursery.start_soon(job.report, index)

    # Under a per-job lock held across each write, 20 reports would be 20 batches of 1.
    assert len(database.sizes) < tasks
    assert max(database.sizes) > 1
    assert sum(database.sizes) == tasks  # 19 task outputs and the job's move to CommitReady
    assert database.state_of(job.job_id) is JobState.COMMIT_READY
    assert len(database.task_outputs[job.job_id]) == tasks - 1


async def test_a_failed_write_of_a_recorded_success_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    job = await start_job(database, 3)
    database.fail_once["record_task_outputs"] = 1
    with pytest.raises(StorageUnavailable):
        await job.report(0)
    assert job.job_id not in database.task_outputs
    # Nothing was applied: the instance is still live, and the EM's retry is accepted.
    await job.report(0)
    assert database.task_outputs[job.job_id] == {0: frame_of(0)}
    with pytest.raises(CacheStale):
        await job.report(0)
