"""64 fake EMs against the storage process over gRPC, with injected failures and EM deaths.

There is no scheduler yet, so each fake EM (a thread with its own grpcio channel) polls the
InboundQueueService itself, then registers and reports what it got, heartbeating as it goes.
Failures are injected two ways:

* some task instances are reported as failures (a few tasks fail twice), which uses retries;
* some EMs die: they register instances, never report them and stop heartbeating (the thread
  comes back under a new EM id, as a restarted EM would). Storage must declare them dead after
  the stale cutoff, remove their instances and hand the tasks out again.

Every job must end Succeeded with the outputs of a reference computation, every task (commit
included) must have exactly one accepted success, and the abandoned tasks must have been
handed out again. The storage is the real ``python -m spider.storage`` process, so the EMs'
Python and the service's use both cores.
"""

from __future__ import annotations

import collections
import hashlib
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import grpc
import ormsgpack
import pytest

from spider.core.data_types import BytesType, DataType
from spider.core.task_graph import (
    ExecutionPolicy,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    encode_job_inputs,
    encode_task_graph,
)
from spider.core.task_outputs import decode_task_outputs
from spider.core.wire import decode_frame, encode_frame
from spider.storage.db import DatabaseConfig
from tests.integration.storage_service.grpc_client import (
    GrpcEm,
    StorageClient,
    StubModules,
    task_key,
    task_outputs,
    unpack,
)
from tests.unit.storage.jobs import reference_job_outputs, submission, summing_task

from .storage_process import StorageProcess, running_storage, write_config

JOBS = "JobOrchestrationService"
NUM_EMS = 64
RETRIES = 2
# Short enough that dead EMs are found within seconds; long enough that a live EM, which
# heartbeats every HEARTBEAT_SEC between its calls, is not declared dead on a loaded machine.
# (If one is anyway, its thread re-registers and the test still holds, see `Fleet.stale`.)
STALE_CUTOFF_SEC = 4.0
GC_INTERVAL_SEC = 0.5
HEARTBEAT_SEC = 0.5
POLL_WAIT_MS = 100
DYING_EMS = 4
RUN_DEADLINE_SEC = 600.0
BYTES = DataType(BytesType())
PAYLOAD_BYTES = 1024
# Default timeouts (150 s soft): a soft timeout would hand a slow instance out twice, and the
# test counts hand-outs exactly.
POLICY = ExecutionPolicy(RETRIES, 1)
COMMIT = TerminationTaskDescriptor(TdlContext("test_pkg", "commit"), ExecutionPolicy(RETRIES, 1))

Compute = Callable[[TaskGraph, int, bytes], bytes]
"""What a task outputs: (graph, task index, serialized inputs) -> serialized outputs."""


class EmDeclaredDead(Exception):
    """Storage declared this EM dead; the thread must come back under a new id.

    ``consumed`` says whether the entry in hand was registered (storage reschedules its task
    when it removes the instance) or not (the new EM must run it, or it would be lost).
    """

    def __init__(self, *, consumed: bool) -> None:
        super().__init__()
        self.consumed = consumed


@attrs.define(eq=False)
class Fleet:
    """What the fake EMs share: the jobs, the failure plan, and what happened, under a lock."""

    stubs: StubModules
    port: int
    graphs: dict[int, TaskGraph]
    compute: Compute
    planned_failures: dict[tuple[int, str], int]
    """(job, task key) -> how many of its first attempts report failure."""
    die_after: int
    """A dying EM dies when it gets work after running this many tasks."""
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    done: threading.Event = attrs.field(factory=threading.Event)
    committed: threading.Condition = attrs.field(init=False)
    registrations: Counter[tuple[int, str]] = attrs.field(factory=Counter)
    attempts: Counter[tuple[int, str]] = attrs.field(factory=Counter)
    successes: Counter[tuple[int, str]] = attrs.field(factory=Counter)
    failures_reported: int = 0
    stale: int = 0
    """Registrations or reports storage refused as stale (only after a live EM was declared
    dead: its instances were rescheduled)."""
    reregistrations: int = 0
    abandoned: list[tuple[GrpcEm, int, Any, Any]] = attrs.field(factory=list)
    """(dead EM, job, task id, execution context) of each instance a dying EM walked away from."""

    def __attrs_post_init__(self) -> None:
        self.committed = threading.Condition(self.lock)

    def run_em(self, number: int) -> None:
        """One EM's life: poll, register, report, heartbeat, until the jobs are done."""
        client = StorageClient.connect(self.stubs, self.port)
        try:
            em = GrpcEm.register(client)
            dies = number < DYING_EMS
            ran = 0
            last_heartbeat = time.monotonic()
            # Polled entries not yet registered: the queue will not hand them out again.
            pending: collections.deque[Any] = collections.deque()
            while not self.done.is_set():
                try:
                    if time.monotonic() - last_heartbeat >= HEARTBEAT_SEC:
                        self.heartbeat(em)
                        last_heartbeat = time.monotonic()
                    if not pending:
                        pending.extend(
                            em.poll("index", max_items=2, wait_ms=POLL_WAIT_MS)
                            or em.poll("commit", max_items=1)
                        )
                    if dies and pending and ran >= self.die_after:
                        self.abandon(em, pending)
                        dies = False
                        # A restarted EM comes back under a new id.
                        raise EmDeclaredDead(consumed=False)
                    while pending:
                        self.run_entry(em, pending[0])
                        pending.popleft()
                        ran += 1
                except EmDeclaredDead as dead:
                    if dead.consumed:
                        pending.popleft()
                    em = GrpcEm.register(client)
                    last_heartbeat = time.monotonic()
        finally:
            client.close()

    def heartbeat(self, em: GrpcEm) -> None:
        try:
            em.client.sync(
                "ExecutionManagerLivenessService",
                "UpdateExecutionManagerHeartbeat",
                execution_manager_id=em.em_id,
            )
        except grpc.RpcError as error:
            self.check_declared_dead(error, consumed=False)
            raise

    def check_declared_dead(self, error: grpc.RpcError, *, consumed: bool) -> None:
        """Raise ``EmDeclaredDead`` for storage's answer to a dead EM; count stale answers."""
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            return
        with self.lock:
            if "declared dead" in error.details():
                self.reregistrations += 1
                raise EmDeclaredDead(consumed=consumed) from error
            if error.details().startswith("cache stale"):
                self.stale += 1

    def abandon(self, em: GrpcEm, pending: collections.deque[Any]) -> None:
        """Die holding instances: register them and never report them or heartbeat again."""
        while pending:
            context = self.register(em, pending[0])
            entry = pending.popleft()
            if context is not None:
                with self.lock:
                    self.abandoned.append((em, entry.job_id, entry.task_id, context))

    def register(self, em: GrpcEm, entry: Any) -> Any:
        """Register an instance; None if storage says the entry is stale."""
        try:
            context = em.register_instance(entry.job_id, entry.task_id)
        except grpc.RpcError as error:
            self.check_declared_dead(error, consumed=False)
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return None
            raise
        with self.lock:
            self.registrations[entry.job_id, task_key(entry.task_id)] += 1
        return context

    def run_entry(self, em: GrpcEm, entry: Any) -> None:
        context = self.register(em, entry)
        if context is None:
            return
        key = (entry.job_id, task_key(entry.task_id))
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        try:
            if attempt < self.planned_failures.get(key, 0):
                em.fail(entry.job_id, entry.task_id, context, f"injected failure {attempt}")
                with self.lock:
                    self.failures_reported += 1
                return
            outputs = self.outputs(entry.job_id, entry.task_id, context)
            em.succeed(entry.job_id, entry.task_id, context, outputs)
        except grpc.RpcError as error:
            self.check_declared_dead(error, consumed=True)
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return
            raise
        with self.committed:
            self.successes[key] += 1
            if key[1] == "commit":
                self.committed.notify_all()

    def outputs(self, job_id: int, task_id: Any, context: Any) -> bytes:
        """The correct outputs of an instance (termination tasks have none)."""
        if task_id.WhichOneof("kind") != "index":
            return b""
        return self.compute(self.graphs[job_id], task_id.index, context.serialized_task_io)

    def wait_for_commits(self, client: StorageClient, deadline: float) -> None:
        """Block until every job's commit task succeeded; fail early if a job ends otherwise."""
        while True:
            with self.committed:
                commits = sum(self.successes[job, "commit"] for job in self.graphs)
                if commits == len(self.graphs):
                    return
                self.committed.wait(1.0)
            # A job that failed or was cancelled would never commit: stop at once. (SUCCEEDED:
            # the commit was accepted, the EM has not counted it yet.)
            states = {job: state_of(client, job) for job in self.graphs}
            assert all(
                state in ("RUNNING", "COMMIT_READY", "SUCCEEDED") for state in states.values()
            ), states
            assert time.monotonic() < deadline, f"jobs not done in time: {states}, {self.report()}"

    def report(self) -> str:
        return (
            f"registrations={sum(self.registrations.values())} "
            f"successes={sum(self.successes.values())} failures={self.failures_reported} "
            f"abandoned={len(self.abandoned)} stale={self.stale} "
            f"reregistrations={self.reregistrations}"
        )


def state_of(client: StorageClient, job_id: int) -> str:
    reply = client.sync(JOBS, "GetJobState", job_id=job_id)
    name: str = client.pb.storage.JobState.Name(reply.state)
    return name


def plan_failures(rng: random.Random, job_id: int, tasks: int, rate: float) -> dict[Any, int]:
    """Fail the first attempt of about ``rate`` of the tasks, and the first two of a fifth of
    those (retries are 2, so every task still succeeds on its last attempt at the latest)."""
    plan: dict[Any, int] = {}
    for index in range(tasks):
        if rng.random() < rate:
            plan[job_id, str(index)] = 2 if rng.random() < 0.2 else 1
    return plan


def dead_ems_declared(storage: StorageProcess) -> int:
    """How many EMs the storage process declared dead, from its log."""
    pattern = re.compile(r"declared (\d+) execution manager\(s\) dead")
    return sum(
        int(match.group(1))
        for record in storage.records()
        if (match := pattern.match(record["message"])) is not None
    )


def run_fleet(
    tmp_path: Path,
    database: DatabaseConfig,
    stubs: StubModules,
    jobs: list[tuple[TaskGraph, bytes, bytes]],
    compute: Compute,
    failure_rate: float,
    die_after: int,
) -> tuple[Fleet, list[bytes], int]:
    """Run ``jobs`` (graph, compressed graph, compressed inputs) with NUM_EMS fake EMs.

    Returns the fleet, each job's serialized outputs, and how many EMs storage declared dead.
    """
    config = write_config(
        tmp_path,
        database,
        runtime={
            "task_instance_pool": {
                "execution_manager_stale_cutoff_sec": STALE_CUTOFF_SEC,
                "gc_interval_sec": GC_INTERVAL_SEC,
            }
        },
    )
    rng = random.Random(1)
    with running_storage("--config", config, cwd=tmp_path) as storage:
        client = StorageClient.connect(stubs, storage.port)
        group = client.sync(
            "ResourceGroupManagementService",
            "AddResourceGroup",
            external_resource_group_id="fleet",
            password=b"secret",
        ).resource_group_id
        graphs: dict[int, TaskGraph] = {}
        plan: dict[tuple[int, str], int] = {}
        for graph, compressed_graph, compressed_inputs in jobs:
            job_id = client.sync(
                JOBS,
                "RegisterJob",
                resource_group_id=group,
                compressed_serialized_task_graph=compressed_graph,
                compressed_serialized_inputs=compressed_inputs,
            ).job_id
            graphs[job_id] = graph
            plan.update(plan_failures(rng, job_id, len(graph), failure_rate))
        fleet = Fleet(stubs, storage.port, graphs, compute, plan, die_after)
        for job_id in graphs:
            client.sync(JOBS, "StartJob", job_id=job_id)
        with ThreadPoolExecutor(NUM_EMS) as pool:
            lives = [pool.submit(fleet.run_em, number) for number in range(NUM_EMS)]
            try:
                fleet.wait_for_commits(client, time.monotonic() + RUN_DEADLINE_SEC)
            finally:
                fleet.done.set()
            for life in lives:
                life.result()  # re-raises what went wrong in an EM thread
        states = {job: state_of(client, job) for job in graphs}
        assert set(states.values()) == {"SUCCEEDED"}, states
        outputs = [
            client.sync(JOBS, "GetJobOutputs", job_id=job_id).serialized_outputs
            for job_id in graphs
        ]
        # A dead EM's late report is refused, not taken as a second success.
        for em, job_id, task_id, context in fleet.abandoned:
            # The EM's own channel closed with its thread; the ids are what matter.
            zombie = attrs.evolve(em, client=client)
            late = fleet.outputs(job_id, task_id, context)
            with pytest.raises(grpc.RpcError) as refused:
                zombie.succeed(job_id, task_id, context, late)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        client.close()
        dead = dead_ems_declared(storage)
        assert storage.stop() == 0
    return fleet, outputs, dead


def check_fleet(fleet: Fleet, dead: int) -> None:
    """Every task has exactly one accepted success; failures and deaths were really exercised."""
    print(f"{fleet.report()} dead_ems_declared={dead}")  # shown with -s and on failure
    expected = {
        (job, key)
        for job, graph in fleet.graphs.items()
        for key in [*map(str, range(len(graph))), "commit"]
    }
    assert set(fleet.successes) == expected
    assert set(fleet.successes.values()) == {1}, fleet.report()
    assert fleet.failures_reported == sum(fleet.planned_failures.values()) > 0
    assert len(fleet.abandoned) >= DYING_EMS
    assert dead >= DYING_EMS
    extra = Counter((job, task_key(task_id)) for _, job, task_id, _ in fleet.abandoned)
    for key in expected:
        needed = 1 + fleet.planned_failures.get(key, 0) + extra[key]
        if dead == DYING_EMS:  # no live EM was mistaken for dead: nothing ran twice
            assert fleet.registrations[key] == needed, (key, fleet.report())
        else:
            assert fleet.registrations[key] >= needed, (key, fleet.report())
    if dead == DYING_EMS:
        assert fleet.stale == 0, fleet.report()


# --- 10,000 independent tasks with 1 KiB payloads ----------------------------------------------

INDEPENDENT_JOBS = 10
TASKS_PER_JOB = 1000


def digest(index: int, data: bytes) -> bytes:
    """A 1 KiB output that depends on the whole input and on the task."""
    return hashlib.blake2b(data, key=index.to_bytes(8, "little")).digest() * 16


def digest_task(graph: TaskGraph, index: int, serialized_inputs: bytes) -> bytes:
    [payload] = decode_frame(serialized_inputs)
    return encode_frame([ormsgpack.packb(digest(index, ormsgpack.unpackb(payload)))])


def independent_job(rng: random.Random) -> tuple[TaskGraph, bytes, bytes, list[bytes]]:
    """TASKS_PER_JOB independent tasks, 1 KiB of bytes in and out; and the expected outputs."""
    graph = TaskGraph(commit_task=COMMIT)
    descriptor = TaskDescriptor(
        TdlContext("test_pkg", "digest"), [BYTES], [BYTES], execution_policy=POLICY
    )
    for _ in range(TASKS_PER_JOB):
        graph.insert_task(descriptor)
    inputs = [rng.randbytes(PAYLOAD_BYTES) for _ in range(TASKS_PER_JOB)]
    outputs = [digest(index, data) for index, data in enumerate(inputs)]
    packed = encode_job_inputs([ormsgpack.packb(data) for data in inputs])
    return graph, encode_task_graph(graph), packed, outputs


def test_64_ems_run_10000_independent_tasks_through_failures_and_deaths(
    tmp_path: Path, storage_config: DatabaseConfig, stub_modules: StubModules
) -> None:
    rng = random.Random(0)
    jobs = [independent_job(rng) for _ in range(INDEPENDENT_JOBS)]

    fleet, outputs, dead = run_fleet(
        tmp_path,
        storage_config,
        stub_modules,
        [(graph, compressed, inputs) for graph, compressed, inputs, _ in jobs],
        digest_task,
        failure_rate=0.03,
        die_after=20,
    )

    for serialized, (_, _, _, expected) in zip(outputs, jobs, strict=True):
        assert [ormsgpack.unpackb(payload) for payload in decode_task_outputs(serialized)] == (
            expected
        )
    check_fleet(fleet, dead)


# --- a 10-layer x 100-neuron graph, 25 inputs per neuron ---------------------------------------


LAYERS = 10
NEURONS = 100
FAN_IN = 25


def neural_network(rng: random.Random) -> TaskGraph:
    """Layer 0 reads one graph input per neuron; every later neuron reads FAN_IN distinct
    outputs of the previous layer."""
    graph = TaskGraph(commit_task=COMMIT)
    for _ in range(NEURONS):
        graph.insert_task(summing_task(1, 1, retries=RETRIES))
    for layer in range(1, LAYERS):
        previous = range((layer - 1) * NEURONS, layer * NEURONS)
        for _ in range(NEURONS):
            sources = [(parent, 0) for parent in rng.sample(previous, FAN_IN)]
            graph.insert_task(summing_task(FAN_IN, 1, sources, retries=RETRIES))
    return graph


def test_64_ems_run_a_layered_graph_through_failures_and_deaths(
    tmp_path: Path, storage_config: DatabaseConfig, stub_modules: StubModules
) -> None:
    graph = neural_network(random.Random(3))
    inputs = list(range(-50, 50))

    fleet, outputs, dead = run_fleet(
        tmp_path,
        storage_config,
        stub_modules,
        [(graph, *submission(graph, inputs))],
        task_outputs,
        failure_rate=0.05,
        die_after=5,
    )

    [serialized] = outputs
    decoded = [unpack(payload) for payload in decode_task_outputs(serialized)]
    assert decoded == reference_job_outputs(graph, inputs)
    last_layer = range((LAYERS - 1) * NEURONS, LAYERS * NEURONS)
    assert {source.task_idx for source in graph.graph_outputs()} >= set(last_layer)
    check_fleet(fleet, dead)
