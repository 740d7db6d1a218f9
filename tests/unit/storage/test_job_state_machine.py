"""A job's life under random interleavings: a Hypothesis state machine over ``StorageState``.

The machine plays scheduler and EMs for one random job (a small DAG of summing tasks, random
retries and instance limits, optional commit and cleanup tasks) and interleaves at random:
polls, registrations, successes, failures, reports with the wrong output count, cancels, EM
deaths, soft and hard timeouts, database outages and storage restarts (a new ``StorageState``
recovered from the same fake database, with a new session).

After every step: the cache agrees with the database, the instance pool mirrors the live
instances of the task control blocks, unfinished-parent counters match the graph, and every
output storage holds (in memory or persisted) equals the reference computation.
Once the job is terminal its state never changes again, and whenever it is Succeeded its
outputs equal the reference and every one of its tasks (and its commit task) had an accepted
successful instance. At the end the job is driven to completion without resending anything
(lost work would hang it) and must be in exactly one terminal state, with the same checks.

Each step runs in its own ``trio.run``; time is a plain number the machine advances.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from spider.core.ids import ExecutionManagerId, JobId, SessionId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_state import TaskState
from spider.core.wire import decode_frame, encode_frame
from spider.storage import (
    BadRequest,
    CacheStale,
    EmDead,
    InstanceContext,
    InvalidJobState,
    Lane,
    ReadyTask,
    StaleSession,
    StorageState,
    StorageUnavailable,
)
from spider.storage.instance_gc import sweep_task_instances
from spider.storage.job_lifecycle import hard_timeout_message

from .fake_database import FakeDatabase
from .jobs import (
    FAST_TIMEOUTS,
    decode_job_outputs,
    new_group,
    outputs_for,
    pack,
    reference_job_outputs,
    reference_task_outputs,
    storage_config,
    submission,
    summing_task,
    termination,
    unpack,
)

T = TypeVar("T")
CONFIG = storage_config(grace=1.0)
STALE = (CacheStale, StaleSession)


@st.composite
def jobs(draw: st.DrawFn) -> tuple[TaskGraph, list[int]]:
    """A random valid job: a DAG of 1-6 summing tasks and its integer inputs."""
    graph = TaskGraph(
        commit_task=termination("commit", retries=draw(st.integers(0, 1)))
        if draw(st.booleans())
        else None,
        cleanup_task=termination("cleanup", retries=draw(st.integers(0, 1)))
        if draw(st.booleans())
        else None,
    )
    outputs: list[tuple[int, int]] = []
    num_inputs = 0
    for index in range(draw(st.integers(1, 6))):
        retries = draw(st.integers(0, 2))
        instances = draw(st.integers(1, 2))
        num_outputs = draw(st.integers(0, 2))
        reads_earlier_tasks = draw(st.booleans())
        if outputs and reads_earlier_tasks:
            sources = draw(st.lists(st.sampled_from(outputs), min_size=1, max_size=3))
            descriptor = summing_task(
                len(sources),
                num_outputs,
                sources,
                retries=retries,
                instances=instances,
                timeouts=FAST_TIMEOUTS,
            )
        else:
            width = draw(st.integers(0, 2))
            num_inputs += width
            descriptor = summing_task(
                width, num_outputs, retries=retries, instances=instances, timeouts=FAST_TIMEOUTS
            )
        graph.insert_task(descriptor)
        outputs.extend((index, position) for position in range(num_outputs))
    inputs = draw(st.lists(st.integers(-1000, 1000), min_size=num_inputs, max_size=num_inputs))
    return graph, inputs


@attrs.frozen
class Instance:
    session: SessionId
    task_id: TaskId
    context: InstanceContext
    em: ExecutionManagerId


class JobLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.database = FakeDatabase()
        self.now = 0.0
        self.entries: list[tuple[SessionId, ReadyTask]] = []
        self.instances: list[Instance] = []
        self.accepted: set[TaskId] = set()
        self.failure_messages: set[str] = set()
        self.ems: list[ExecutionManagerId] = []
        self.dead_ems: list[ExecutionManagerId] = []
        self.failures = 0
        self.terminal: JobState | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def clock(self) -> float:
        return self.now

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.run(fn, *args)

    async def new_state(self) -> StorageState:
        return await StorageState.create(
            CONFIG, self.database, clock=self.clock, monotonic=self.clock, threaded=False
        )

    def pick(self, items: list[T], choice: int) -> T | None:
        return items[choice % len(items)] if items else None

    @property
    def cached_state(self) -> JobState | None:
        jcb = self.state.lifecycle.cache.get(self.job_id)
        return None if jcb is None else jcb.state

    # --- setup ------------------------------------------------------------------------------

    @initialize(
        job=jobs(), how=st.sampled_from(["register", "register and start", "submit started"])
    )
    def submit(self, job: tuple[TaskGraph, list[int]], how: str) -> None:
        self.graph, self.inputs = job
        self.reference = reference_task_outputs(self.graph, self.inputs)
        self.state = self.run(self.new_state)
        group = new_group(self.database)
        blobs = submission(self.graph, self.inputs)

        async def submit() -> JobId:
            if how == "submit started":  # Spider-py's SubmitJob: both in one write
                job_id = await self.state.lifecycle.register_job(group, *blobs, start=True)
            else:
                job_id = await self.state.lifecycle.register_job(group, *blobs)
            for _ in range(2):
                registration = await self.state.register_execution_manager("10.0.0.1")
                self.ems.append(registration.execution_manager_id)
            return job_id

        self.job_id = self.run(submit)
        if how == "register and start":
            self.start()

    # --- client -----------------------------------------------------------------------------

    @rule()
    def start(self) -> None:
        before = self.database.state_of(self.job_id)

        async def start() -> None:
            try:
                assert await self.state.lifecycle.start_job(self.job_id) is JobState.RUNNING
                assert before is JobState.READY
            except InvalidJobState:
                assert before is not JobState.READY

        self.run(start)

    @rule()
    def cancel(self) -> None:
        before = self.database.state_of(self.job_id)
        has_cleanup = self.graph.cleanup_task is not None

        async def cancel() -> None:
            try:
                after = await self.state.lifecycle.cancel_job(self.job_id)
            except InvalidJobState:
                assert before is JobState.COMMIT_READY
                assert not has_cleanup
                return
            if before.is_terminal or before is JobState.CLEANUP_READY:
                assert after is before
            else:
                assert after is (JobState.CLEANUP_READY if has_cleanup else JobState.CANCELLED)

        self.run(cancel)

    # --- scheduler and EMs ------------------------------------------------------------------

    @rule()
    def poll(self) -> None:
        async def poll() -> None:
            for lane in Lane:
                batch = await self.state.poll_ready_tasks(lane, 100, 0)
                self.entries.extend((batch.session_id, entry) for entry in batch.tasks)

        self.run(poll)

    @rule(choice=st.integers(0, 100), em_choice=st.integers(0, 10))
    def register(self, choice: int, em_choice: int) -> None:
        if not self.entries:
            self.poll()
        picked = self.pick(self.entries, choice)
        em = self.pick(self.ems, em_choice)
        if picked is None or em is None:
            return
        self.entries.remove(picked)
        session, entry = picked

        async def register() -> None:
            try:
                context = await self.state.lifecycle.register_task_instance(
                    entry.job_id, entry.task_id, em, session
                )
            except STALE:
                return
            self.instances.append(Instance(session, entry.task_id, context, em))

        self.run(register)

    @rule(choice=st.integers(0, 100))
    def register_on_a_dead_em(self, choice: int) -> None:
        dead = self.pick(self.dead_ems, choice)
        if dead is None:
            return

        async def register() -> None:
            try:
                await self.state.lifecycle.register_task_instance(
                    self.job_id, TaskId.index(0), dead, self.state.session
                )
                raise AssertionError("a dead EM registered an instance")
            except EmDead:
                pass

        self.run(register)

    async def report_success(self, instance: Instance, outputs: bytes | None = None) -> bool:
        """Report a success; True if storage accepted it."""
        if outputs is None:
            outputs = outputs_for(instance.task_id, instance.context, self.graph)
        try:
            await self.state.lifecycle.report_task_success(
                self.job_id,
                instance.task_id,
                instance.context.task_instance_id,
                instance.session,
                outputs,
            )
        except STALE:
            return False
        self.accepted.add(instance.task_id)
        return True

    @rule(choice=st.integers(0, 100))
    def succeed(self, choice: int) -> None:
        instance = self.pick(self.instances, choice)
        if instance is None:
            return
        self.instances.remove(instance)
        self.run(self.report_success, instance)

    async def report_failure(self, instance: Instance) -> None:
        """Report a failure with a message of its own."""
        self.failures += 1
        message = f"failure {self.failures}"
        try:
            await self.state.lifecycle.report_task_failure(
                self.job_id,
                instance.task_id,
                instance.context.task_instance_id,
                instance.session,
                message,
            )
        except STALE:
            return
        self.failure_messages.add(message)

    @rule(choice=st.integers(0, 100))
    def fail(self, choice: int) -> None:
        instance = self.pick(self.instances, choice)
        if instance is None:
            return
        self.instances.remove(instance)
        self.run(self.report_failure, instance)

    @rule(choices=st.lists(st.integers(0, 100), min_size=2, max_size=6), failing=st.integers(0, 63))
    def report_together(self, choices: list[int], failing: int) -> None:
        """Several instances report at once (successes of one job are written concurrently
        and share group commits); bit ``n`` of ``failing`` makes the ``n``-th a failure."""
        picked: list[Instance] = []
        for choice in choices:
            instance = self.pick([i for i in self.instances if i not in picked], choice)
            if instance is not None:
                picked.append(instance)
        for instance in picked:
            self.instances.remove(instance)

        async def together() -> None:
            async with trio.open_nursery() as nursery:
                for number, instance in enumerate(picked):
                    if failing >> number & 1:
                        nursery.start_soon(self.report_failure, instance)
                    else:
                        nursery.start_soon(self.report_success, instance)

        self.run(together)

    @rule(choice=st.integers(0, 100))
    def report_the_wrong_output_count(self, choice: int) -> None:
        instance = self.pick(self.instances, choice)
        if instance is None or instance.task_id.kind is not TaskKind.INDEX:
            return
        assert instance.task_id.position is not None
        declared = len(self.graph.task(instance.task_id.position).outputs)
        frame = encode_frame([pack(0)] * (declared + 1))
        outputs_before = dict(self.database.task_outputs.get(self.job_id, {}))
        state_before = self.database.state_of(self.job_id)

        async def report() -> None:
            try:
                accepted = await self.report_success(instance, frame)
            except BadRequest:
                assert instance.context.task_instance_id in self.state.lifecycle.pool
                return
            assert not accepted, "storage accepted outputs of the wrong count"

        self.run(report)
        assert self.database.task_outputs.get(self.job_id, {}) == outputs_before
        assert self.database.state_of(self.job_id) is state_before

    @rule(
        choice=st.integers(0, 100),
        method=st.sampled_from(["record_task_outputs", "transition_job"]),
    )
    def report_during_a_db_outage(self, choice: int, method: str) -> None:
        instance = self.pick(self.instances, choice)
        if instance is None:
            return
        self.database.fail_once[method] = 1
        pool_before = len(self.state.lifecycle.pool)
        state_before = self.cached_state

        async def report() -> None:
            try:
                await self.report_success(instance)
                self.instances.remove(instance)
            except StorageUnavailable:
                assert len(self.state.lifecycle.pool) == pool_before
                assert self.cached_state is state_before

        self.run(report)
        self.database.fail_once.clear()

    # --- time, deaths and restarts -----------------------------------------------------------

    async def heartbeat_and_sweep(self) -> None:
        for em in self.ems:
            await self.state.update_execution_manager_heartbeat(em)
        await sweep_task_instances(self.state.lifecycle)

    @rule(choice=st.integers(0, 10))
    def em_dies(self, choice: int) -> None:
        busy = [instance.em for instance in self.instances if instance.em in self.ems]
        victim = self.pick(busy or self.ems, choice)
        if victim is None:
            return
        self.ems.remove(victim)
        self.dead_ems.append(victim)
        self.database.ems[victim].last_heartbeat_at = self.now - 100

        async def die() -> None:
            await self.heartbeat_and_sweep()
            registration = await self.state.register_execution_manager("10.0.0.2")
            self.ems.append(registration.execution_manager_id)

        self.run(die)

    @rule(seconds=st.sampled_from([1.2, 3.5]))
    def time_passes(self, seconds: float) -> None:
        """1.2 s passes soft timeouts (1 s); 3.5 s also hard timeouts plus grace (3 s)."""
        self.now += seconds
        self.run(self.heartbeat_and_sweep)

    @rule()
    def restart(self) -> None:
        async def restart() -> StorageState:
            state = await self.new_state()
            state.lifecycle.resend_ready_work()  # what the service does once it serves
            return state

        self.state = self.run(restart)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def cache_agrees_with_the_database(self) -> None:
        if not hasattr(self, "state"):
            return
        cached = self.cached_state
        if cached is not None:
            assert cached is self.database.state_of(self.job_id)
        live: set[int] = set()
        for jcb in self.state.lifecycle.cache:
            live |= jcb.live_instances()
        pool = {record.id for record in self.state.lifecycle.pool.snapshot()}
        assert pool == live

    @invariant()
    def queries_agree_with_the_database(self) -> None:
        if not hasattr(self, "state"):
            return
        stored = self.database.state_of(self.job_id)

        async def query() -> None:
            assert await self.state.lifecycle.get_job_state(self.job_id) is stored
            outcome = await self.state.wait_for_job(self.job_id, 0)
            assert outcome.state is stored
            assert (outcome.serialized_outputs is not None) is (stored is JobState.SUCCEEDED)
            jcb = self.state.lifecycle.cache.get(self.job_id)
            if jcb is not None:  # waiters are woken exactly when the end is durable
                assert jcb.ended.is_set() is stored.is_terminal
            try:
                await self.state.lifecycle.get_job_outputs(self.job_id)
                assert stored is JobState.SUCCEEDED
            except InvalidJobState:
                assert stored is not JobState.SUCCEEDED
            try:
                await self.state.lifecycle.get_job_error(self.job_id)
                assert stored is JobState.FAILED
            except InvalidJobState:
                assert stored is not JobState.FAILED

        self.run(query)

    @invariant()
    def outputs_and_counters_match_the_reference(self) -> None:
        if not hasattr(self, "state"):
            return
        for index, frame in self.database.task_outputs.get(self.job_id, {}).items():
            assert [unpack(p) for p in decode_frame(frame)] == self.reference[index]
        jcb = self.state.lifecycle.cache.get(self.job_id)
        if jcb is None or jcb.dataflow is None:
            return
        dataflow = jcb.dataflow
        unfinished = 0
        for index, tcb in enumerate(dataflow.tasks):
            if tcb.state is TaskState.SUCCEEDED:
                assert [unpack(p) for p in dataflow.outputs[index] or []] == self.reference[index]
                continue
            unfinished += 1
            if tcb.state.is_terminal:
                continue
            waiting = sum(
                dataflow.tasks[parent].state is not TaskState.SUCCEEDED
                for parent in self.graph.parents(index)
            )
            assert dataflow.waiting_on[index] == waiting
            assert (tcb.state is TaskState.PENDING) == (waiting > 0)
            assert (tcb.state is TaskState.RUNNING) == bool(tcb.instances)
        assert dataflow.unfinished == unfinished

    @invariant()
    def a_terminal_state_is_final(self) -> None:
        """Exactly one terminal state: once the job ends, nothing moves it to another one."""
        if not hasattr(self, "state"):
            return
        stored = self.database.state_of(self.job_id)
        if self.terminal is not None:
            assert stored is self.terminal, f"{self.terminal.value} became {stored.value}"
        elif stored.is_terminal:
            self.terminal = stored

    @invariant()
    def a_succeeded_job_is_complete(self) -> None:
        """Checked at every step, not only at the end: a job must never be Succeeded early."""
        if not hasattr(self, "state") or self.database.state_of(self.job_id) is not (
            JobState.SUCCEEDED
        ):
            return
        outputs = decode_job_outputs(self.run(self.state.lifecycle.get_job_outputs, self.job_id))
        assert outputs == reference_job_outputs(self.graph, self.inputs)
        assert self.expected_successes() <= self.accepted

    def expected_successes(self) -> set[TaskId]:
        """The tasks a Succeeded job must have an accepted successful instance of."""
        expected = {TaskId.index(n) for n in range(len(self.graph))}
        if self.graph.commit_task is not None:
            expected.add(TaskId.COMMIT)
        return expected

    # --- the end ----------------------------------------------------------------------------

    async def drive_to_completion(self) -> JobState:
        state = self.state
        if self.database.state_of(self.job_id) is JobState.READY:
            await state.lifecycle.start_job(self.job_id)
        em = (await state.register_execution_manager("10.0.0.3")).execution_manager_id
        self.ems.append(em)
        for _ in range(30):  # each round finishes at least one level of the graph
            for instance in list(self.instances):
                self.instances.remove(instance)
                await self.report_success(instance)
            if self.database.state_of(self.job_id).is_terminal:
                return self.database.state_of(self.job_id)
            for lane in Lane:
                batch = await state.poll_ready_tasks(lane, 100, 0)
                self.entries.extend((batch.session_id, entry) for entry in batch.tasks)
            entries, self.entries = self.entries, []
            for session, entry in entries:
                try:
                    context = await state.lifecycle.register_task_instance(
                        entry.job_id, entry.task_id, em, session
                    )
                except STALE:
                    continue
                self.instances.append(Instance(session, entry.task_id, context, em))
        raise AssertionError(
            f"job stuck in {self.database.state_of(self.job_id).value}: ready work was lost"
        )

    def teardown(self) -> None:
        if not hasattr(self, "state"):
            return
        final = self.run(self.drive_to_completion)
        assert final.is_terminal
        assert self.terminal is None or final is self.terminal
        cached = self.cached_state
        assert cached is None or cached is final
        if final is JobState.SUCCEEDED:
            outputs = decode_job_outputs(
                self.run(self.state.lifecycle.get_job_outputs, self.job_id)
            )
            assert outputs == reference_job_outputs(self.graph, self.inputs)
            assert self.expected_successes() <= self.accepted
        elif final is JobState.FAILED:
            error = self.run(self.state.lifecycle.get_job_error, self.job_id)
            assert error in self.failure_messages or error == hard_timeout_message(FAST_TIMEOUTS)
        elif self.graph.cleanup_task is not None:
            assert TaskId.CLEANUP in self.accepted
        assert self.run(self.state.lifecycle.cancel_job, self.job_id) is final


JobLife.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_a_job_always_ends_in_one_terminal_state_with_correct_outputs = JobLife.TestCase
