"""Jobs for storage tests: graphs of summing tasks, their reference outputs, and a simulated EM.

Every test task is deterministic: output ``k`` of task ``i`` is ``sum(inputs) + 10 * i + k``,
so a job's correct outputs can be computed here without storage, and any task result storage
mixes up shows as a wrong sum.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs
import ormsgpack
import trio

from spider.core.data_types import DataType, IntType
from spider.core.ids import ExecutionManagerId, JobId, ResourceGroupId, SessionId
from spider.core.job_state import JobState
from spider.core.task_graph import (
    ExecutionPolicy,
    InputSource,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
    encode_job_inputs,
    encode_task_graph,
)
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_outputs import decode_task_outputs
from spider.core.wire import decode_frame, encode_frame
from spider.storage import (
    CacheStale,
    InstanceContext,
    Lane,
    ReadyTask,
    StaleSession,
    StorageConfig,
    StorageState,
)
from spider.storage.config import StorageRuntimeConfig, TaskInstancePoolConfig

from .fake_database import FakeDatabase

INT = DataType(IntType())
FAST_TIMEOUTS = TimeoutPolicy(soft_timeout_ms=1_000, hard_timeout_ms=2_000)
RETRY_AT_ONCE = RetryDelay(0, 0)
"""These jobs test what retries do, not when: a failed task is offered again at once."""


def pack(value: int) -> bytes:
    return ormsgpack.packb(value)


def unpack(payload: bytes) -> int:
    value = ormsgpack.unpackb(payload)
    assert isinstance(value, int)
    return value


def frame_of(*values: int) -> bytes:
    """A wire frame of msgpack ints."""
    return encode_frame([pack(value) for value in values])


def task_result(index: int, inputs: Sequence[int], num_outputs: int) -> list[int]:
    """What test task ``index`` outputs for ``inputs``."""
    return [sum(inputs) + 10 * index + k for k in range(num_outputs)]


def summing_task(
    num_inputs: int,
    num_outputs: int,
    sources: Sequence[tuple[int, int]] | None = None,
    *,
    retries: int = 0,
    instances: int = 1,
    timeouts: TimeoutPolicy | None = None,
) -> TaskDescriptor:
    """A task taking ``num_inputs`` ints (graph inputs if ``sources`` is None)."""
    policy = ExecutionPolicy(retries, instances, timeouts or TimeoutPolicy(), RETRY_AT_ONCE)
    return TaskDescriptor(
        TdlContext("test_pkg", "sum"),
        [INT] * num_inputs,
        [INT] * num_outputs,
        execution_policy=policy,
        input_sources=None if sources is None else [InputSource(*pair) for pair in sources],
    )


def termination(name: str, *, retries: int = 0) -> TerminationTaskDescriptor:
    return TerminationTaskDescriptor(
        TdlContext("test_pkg", name), ExecutionPolicy(retries, 1, FAST_TIMEOUTS, RETRY_AT_ONCE)
    )


def reference_task_outputs(graph: TaskGraph, job_inputs: Sequence[int]) -> list[list[int]]:
    """Every task's outputs, computed without storage."""
    results: list[list[int]] = []
    offsets = {}
    for position, source in reversed(list(enumerate(graph.graph_inputs()))):
        offsets[source.task_idx] = position
    for index in range(len(graph)):
        descriptor = graph.task(index)
        if descriptor.input_sources is None:
            first = offsets.get(index, 0)
            inputs = list(job_inputs[first : first + len(descriptor.inputs)])
        else:
            inputs = [results[s.task_idx][s.position] for s in descriptor.input_sources]
        results.append(task_result(index, inputs, len(descriptor.outputs)))
    return results


def reference_job_outputs(graph: TaskGraph, job_inputs: Sequence[int]) -> list[int]:
    results = reference_task_outputs(graph, job_inputs)
    return [results[s.task_idx][s.position] for s in graph.graph_outputs()]


def decode_job_outputs(serialized: bytes) -> list[int]:
    return [unpack(payload) for payload in decode_task_outputs(serialized)]


def diamond(*, retries: int = 0, instances: int = 1) -> TaskGraph:
    """Spider's diamond: A -> B, A -> C, (B, C) -> D; A takes two graph inputs."""
    graph = TaskGraph()
    graph.insert_task(summing_task(2, 1, retries=retries, instances=instances))
    graph.insert_task(summing_task(1, 1, [(0, 0)], retries=retries, instances=instances))
    graph.insert_task(summing_task(1, 1, [(0, 0)], retries=retries, instances=instances))
    graph.insert_task(summing_task(2, 1, [(1, 0), (2, 0)], retries=retries, instances=instances))
    return graph


def flat(size: int, *, payload_bytes: int = 0, retries: int = 0, instances: int = 1) -> TaskGraph:
    """``size`` independent tasks, each with one graph input and one output."""
    graph = TaskGraph(commit_task=termination("commit"), cleanup_task=termination("cleanup"))
    descriptor = summing_task(1, 1, retries=retries, instances=instances)
    for _ in range(size):
        graph.insert_task(descriptor)
    return graph


def layered(
    layers: int, width: int, fan_in: int, *, seed: int = 0, retries: int = 0, instances: int = 1
) -> TaskGraph:
    """A layered network: layer 0 reads one graph input each; every later task reads
    ``fan_in`` random outputs of the previous layer (duplicates allowed), like upstream's."""
    rng = random.Random(seed)
    graph = TaskGraph(commit_task=termination("commit"))
    first = summing_task(1, 1, retries=retries, instances=instances)
    for _ in range(width):
        graph.insert_task(first)
    for layer in range(1, layers):
        base = (layer - 1) * width
        for _ in range(width):
            sources = [(base + rng.randrange(width), 0) for _ in range(fan_in)]
            graph.insert_task(
                summing_task(fan_in, 1, sources, retries=retries, instances=instances)
            )
    return graph


def submission(graph: TaskGraph, inputs: Sequence[int]) -> tuple[bytes, bytes]:
    return encode_task_graph(graph), encode_job_inputs([pack(value) for value in inputs])


def outputs_for(task_id: TaskId, context: InstanceContext, graph: TaskGraph) -> bytes:
    """The correct ``ReportTaskSuccess.serialized_outputs`` for an instance."""
    if task_id.kind is not TaskKind.INDEX:
        return b""
    assert task_id.position is not None
    inputs = [unpack(payload) for payload in decode_frame(context.serialized_task_io)]
    num_outputs = len(graph.task(task_id.position).outputs)
    return encode_frame(
        [pack(value) for value in task_result(task_id.position, inputs, num_outputs)]
    )


def storage_config(*, grace: float = 1.0, retention: float = 10.0) -> StorageConfig:
    """Storage config for tests: short sweeps and retention, capacities as upstream's."""
    return StorageConfig(
        runtime=StorageRuntimeConfig(
            task_instance_pool=TaskInstancePoolConfig(
                gc_interval_sec=1.0,
                execution_manager_stale_cutoff_sec=5.0,
                hard_timeout_grace_sec=grace,
            ),
            job_cache_gc=attrs.evolve(
                StorageRuntimeConfig().job_cache_gc,
                gc_interval_sec=1.0,
                terminated_job_retention_sec=retention,
            ),
        )
    )


async def create_state(database: FakeDatabase, config: StorageConfig | None = None) -> StorageState:
    """A state on ``database`` whose clocks are Trio's (so ``autojump_clock`` drives them)."""
    return await StorageState.create(
        config or storage_config(),
        database,
        clock=trio.current_time,
        monotonic=trio.current_time,
        threaded=False,
    )


def new_group(database: FakeDatabase, name: str = "group") -> ResourceGroupId:
    """A resource group, inserted directly (skips password hashing)."""
    return database.add_resource_group(name, b"unused")


async def drain(state: StorageState, lane: Lane = Lane.TASK) -> list[ReadyTask]:
    """Everything waiting in ``lane`` right now."""
    batch = await state.poll_ready_tasks(lane, 1 << 30, 0)
    return list(batch.tasks)


@attrs.define(eq=False)
class SimulatedEm:
    """Runs a job's tasks against a ``StorageState`` as an EM would, with injected failures.

    ``fail(task_id, attempt)`` decides whether attempt number ``attempt`` (0-based, per task)
    fails. Instances are registered and reported concurrently by ``workers`` tasks.
    """

    state: StorageState
    graph: TaskGraph
    em_id: ExecutionManagerId
    fail: Callable[[TaskId, int], bool] = lambda task_id, attempt: False
    attempts: dict[TaskId, int] = attrs.field(factory=dict)
    successes: dict[TaskId, int] = attrs.field(factory=dict)
    stale: int = 0

    twin_failures: Callable[[TaskId], bool] = lambda task_id: False
    """On its first dispatch, a task for which this is True gets two instances registered and
    failed concurrently (upstream's ``jcb_test`` failure injection)."""

    async def fail_twice(self, entry: ReadyTask, session: SessionId) -> None:
        async def register_and_fail() -> None:
            try:
                context = await self.state.lifecycle.register_task_instance(
                    entry.job_id, entry.task_id, self.em_id, session
                )
                await trio.lowlevel.checkpoint()
                await self.state.lifecycle.report_task_failure(
                    entry.job_id,
                    entry.task_id,
                    context.task_instance_id,
                    session,
                    f"injected failure of {entry.task_id}",
                )
            except (CacheStale, StaleSession):
                self.stale += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(register_and_fail)
            nursery.start_soon(register_and_fail)

    async def run_entry(self, entry: ReadyTask, session: SessionId) -> None:
        attempt = self.attempts.get(entry.task_id, 0)
        self.attempts[entry.task_id] = attempt + 1
        if attempt == 0 and self.twin_failures(entry.task_id):
            await self.fail_twice(entry, session)
            return
        try:
            context = await self.state.lifecycle.register_task_instance(
                entry.job_id, entry.task_id, self.em_id, session
            )
            await trio.lowlevel.checkpoint()
            if self.fail(entry.task_id, attempt):
                await self.state.lifecycle.report_task_failure(
                    entry.job_id,
                    entry.task_id,
                    context.task_instance_id,
                    session,
                    f"injected failure of {entry.task_id}, attempt {attempt}",
                )
                return
            await self.state.lifecycle.report_task_success(
                entry.job_id,
                entry.task_id,
                context.task_instance_id,
                session,
                outputs_for(entry.task_id, context, self.graph),
            )
            self.successes[entry.task_id] = self.successes.get(entry.task_id, 0) + 1
        except (CacheStale, StaleSession):
            self.stale += 1

    async def run_job(self, job_id: JobId, *, workers: int = 16) -> JobState:
        """Poll all lanes and run what comes until the job is terminal; return its state.

        Give the test ``autojump_clock``: a job that never ends then fails the test at once.
        """
        if (await self.state.lifecycle.get_job_state(job_id)).is_terminal:
            return await self.state.lifecycle.get_job_state(job_id)
        send, receive = trio.open_memory_channel[ReadyTask](workers)

        async def worker(cancel_scope: trio.CancelScope) -> None:
            async for entry in receive:
                await self.run_entry(entry, self.state.session)
                if (await self.state.lifecycle.get_job_state(job_id)).is_terminal:
                    cancel_scope.cancel(reason="job terminated")

        async def poll(lane: Lane) -> None:
            while True:
                batch = await self.state.poll_ready_tasks(lane, 256, 50)
                for entry in batch.tasks:
                    await send.send(entry)

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                for _ in range(workers):
                    nursery.start_soon(worker, nursery.cancel_scope)
                for lane in Lane:
                    nursery.start_soon(poll, lane)
        return await self.state.lifecycle.get_job_state(job_id)
