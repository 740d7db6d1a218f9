"""Throughput and per-task overhead of the EM's dispatch loop, without any network.

The runtime (``run_execution_manager``) runs with real executors in its process pool but with
in-process fake clients whose calls answer at once, so what is measured is the EM itself:
polling, triage, registration bookkeeping, building the request, the report task, logging.
Each slot is wrapped to time ``slot.run`` (the executor round trip), shown beside the loop.

Per task (1 slot): cycle = time between two consecutive ``NextTask`` calls; executor round
trip = the ``slot.run`` time inside it; EM overhead = cycle - round trip. Throughput is tasks/s
for 1 and 2 slots, for a trivial task and for a task that sleeps 5 ms (written into a temporary
package). Logging is measured both off (WARNING) and as in production (INFO, JSON lines,
formatted and discarded).

Goals: EM overhead p50 under 0.5 ms (logs off); 2 slots at least 1.7x the tasks/s of 1 slot
on the 5 ms task.

Run: ``python benchmarks/em_overhead.py [--tasks N]``.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import logging
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from spider.core import TaskId, encode_frame
from spider.core.assignment import ConsumedAssignment
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)
from spider.core.logging import configure_logging
from spider.em.assignment import Assignment, ExecutionContext, Registration, ReportTarget
from spider.em.errors import EmClientError, ExtensionUnavailable
from spider.em.pool import PoolConfig, TaskOutcome, TaskRequest, open_process_pool
from spider.em.ports import EmClients, TaskPool, TaskSlot
from spider.em.runtime import ExtensionSettings, RuntimeSettings, run_execution_manager
from spider.em.stop import EmStop

REPO_ROOT = Path(__file__).resolve().parent.parent
EM_ID = ExecutionManagerId(1)
SESSION = SessionId(1)
SLEEP_MS = 5

BENCH_PACKAGE = '''
import time
from spider.tdl import task

@task
def noop() -> None:
    """Nothing at all."""

@task
def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds."""
    time.sleep(ms / 1000)
'''


def percentile(sorted_samples: Sequence[float], pct: int) -> float:
    """The sample at index ``count * pct / 100``, clamped to the last (upstream's rule)."""
    return sorted_samples[min(len(sorted_samples) * pct // 100, len(sorted_samples) - 1)]


@attrs.define(eq=False)
class Workload:
    """Assignments to hand out, and when each ``NextTask`` call happened."""

    total: int
    task_func: str
    task_io: bytes
    handed_out: int = 0
    reported: int = 0
    poll_times: list[float] = attrs.field(factory=list)
    all_reported: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class InstantStorage:
    """Liveness and task-instance clients that answer at once (no network)."""

    workload: Workload

    async def register(self, ip_address: str) -> Registration:
        await trio.lowlevel.checkpoint()
        return Registration(EM_ID, SESSION)

    async def heartbeat(self, em_id: ExecutionManagerId) -> SessionId:
        await trio.lowlevel.checkpoint()
        return SESSION

    async def register_task_instance(
        self, assignment: Assignment, em_id: ExecutionManagerId
    ) -> ExecutionContext:
        await trio.lowlevel.checkpoint()
        return ExecutionContext(
            task_instance_id=TaskInstanceId(assignment.id),
            package="bench_tasks",
            task_func=self.workload.task_func,
            soft_timeout_ms=60_000,
            hard_timeout_ms=60_000,
            serialized_task_io=self.workload.task_io,
        )

    async def register_task_instances(
        self, assignments: Sequence[Assignment], em_id: ExecutionManagerId
    ) -> list[ExecutionContext | EmClientError]:
        raise ExtensionUnavailable("not served", operation="RegisterTaskInstances")

    async def report_success(self, target: ReportTarget, outputs: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.workload.reported += 1
        if self.workload.reported == self.workload.total:
            self.workload.all_reported.set()

    async def report_failure(self, target: ReportTarget, message: str) -> None:
        raise RuntimeError(f"a benchmark task failed: {message}")

    async def report_outcomes(
        self, reports: Sequence[tuple[ReportTarget, TaskOutcome]]
    ) -> list[EmClientError | None]:
        # The benchmark measures the loop over Spider's single RPCs (the extension is off).
        raise ExtensionUnavailable("not served", operation="ReportTaskOutcomes")


@attrs.define(eq=False)
class InstantScheduler:
    """A scheduler client with ``workload.total`` assignments ready, then none."""

    workload: Workload

    async def next_task(
        self, em_id: ExecutionManagerId, record: ConsumedAssignment | None, wait_ms: int
    ) -> Assignment | None:
        workload = self.workload
        workload.poll_times.append(trio.current_time())
        if workload.handed_out == workload.total:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        workload.handed_out += 1
        return Assignment(
            id=AssignmentId(workload.handed_out),
            scheduler_id=SchedulerId(1),
            job_id=JobId(1),
            task_id=TaskId.index(0),
            resource_group_id=ResourceGroupId(1),
            session=SESSION,
        )

    async def next_tasks(
        self,
        em_id: ExecutionManagerId,
        records: Sequence[ConsumedAssignment],
        wait_ms: int,
        max_tasks: int,
    ) -> list[Assignment]:
        raise ExtensionUnavailable("not served", operation="NextTasks")

    async def heartbeat(self, em_id: ExecutionManagerId) -> None:
        await trio.lowlevel.checkpoint()

    async def shutdown(
        self, em_id: ExecutionManagerId, records: Sequence[ConsumedAssignment]
    ) -> None:
        await trio.lowlevel.checkpoint()


class Discard(io.StringIO):
    """A log stream that formats everything and keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


@attrs.define(eq=False)
class TimedSlot:
    """A slot that records how long each ``run`` (the executor round trip) took."""

    slot: TaskSlot
    runs: list[tuple[float, float]]

    @property
    def index(self) -> int:
        return self.slot.index

    @property
    def busy(self) -> bool:
        return self.slot.busy

    async def wait_ready(self) -> None:
        await self.slot.wait_ready()

    async def run(self, request: TaskRequest) -> TaskOutcome:
        started = trio.current_time()
        outcome = await self.slot.run(request)
        self.runs.append((started, trio.current_time()))
        return outcome


@attrs.define(eq=False)
class TimedPool:
    pool: TaskPool
    slots: list[TimedSlot]

    def set_shutdown_deadline(self, deadline: float) -> None:
        self.pool.set_shutdown_deadline(deadline)

    def revoke(self, instance_ids: Iterable[TaskInstanceId]) -> list[TaskInstanceId]:
        return self.pool.revoke(instance_ids)


@attrs.frozen
class Result:
    tasks_per_second: float
    cycles: list[float]
    round_trips: list[float]
    overheads: list[float]


async def measure(
    package_dir: Path, slots: int, task_func: str, task_io: bytes, tasks: int
) -> Result:
    """Run ``tasks`` tasks through an EM with ``slots`` slots; time the steady state."""
    workload = Workload(tasks, task_func, task_io)
    runs: list[tuple[float, float]] = []
    config = PoolConfig(package_dir=package_dir, executors=slots, warm_spare=False)

    @asynccontextmanager
    async def open_timed_pool() -> AsyncIterator[TaskPool]:
        async with open_process_pool(config) as pool:
            # Warm every executor (imports, package load) before the clock starts.
            async with trio.open_nursery() as warming:
                for slot in pool.slots:
                    warming.start_soon(slot.run, _request(task_func, task_io))
            yield TimedPool(pool, [TimedSlot(slot, runs) for slot in pool.slots])

    storage = InstantStorage(workload)
    stop = EmStop(grace=5.0)
    settings = RuntimeSettings(
        storage_heartbeat_interval=1.0,
        scheduler_heartbeat_interval=1.0,
        extension=ExtensionSettings(enabled=False),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(
                run_execution_manager,
                settings,
                EmClients(liveness=storage, scheduler=InstantScheduler(workload), storage=storage),
                open_timed_pool,
                stop,
            )
        )
        await workload.all_reported.wait()
        finished = trio.current_time()
        stop.request("benchmark done")
    started = workload.poll_times[0]
    polls = workload.poll_times
    cycles, round_trips, overheads = [], [], []
    if slots == 1:
        for (begin, end), (run_start, run_end) in zip(
            itertools.pairwise(polls), runs, strict=False
        ):
            cycles.append(end - begin)
            round_trips.append(run_end - run_start)
            overheads.append((end - begin) - (run_end - run_start))
    return Result(tasks / (finished - started), cycles, round_trips, overheads)


def _request(task_func: str, task_io: bytes) -> TaskRequest:
    return TaskRequest(
        job_id=JobId(1),
        task_id=TaskId.index(0),
        task_instance_id=TaskInstanceId(0),
        resource_group_id=ResourceGroupId(1),
        package="bench_tasks",
        task_func=task_func,
        serialized_task_io=task_io,
        hard_timeout=60.0,
    )


def _write_package(directory: Path) -> Path:
    package = directory / "bench_tasks"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(BENCH_PACKAGE))
    return directory


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


async def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per run (default 1000)")
    args = parser.parse_args(argv)
    import ormsgpack

    noop_io = encode_frame([])
    sleep_io = encode_frame([ormsgpack.packb(SLEEP_MS)])
    directory = Path(tempfile.mkdtemp(prefix="em_overhead_"))
    try:
        package_dir = _write_package(directory)
        sink = Discard()
        rows = []
        for logs in ("off", "INFO JSON"):
            if logs == "off":
                configure_logging(level="WARNING", stream=sink)
            else:
                configure_logging(level="INFO", stream=sink)
            noop1 = await measure(package_dir, 1, "noop", noop_io, args.tasks)
            noop2 = await measure(package_dir, 2, "noop", noop_io, args.tasks)
            sleep1 = await measure(package_dir, 1, "sleep_ms", sleep_io, max(200, args.tasks // 5))
            sleep2 = await measure(package_dir, 2, "sleep_ms", sleep_io, max(200, args.tasks // 5))
            rows.append((logs, noop1, noop2, sleep1, sleep2))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        logging.shutdown()

    print(f"EM dispatch loop with in-process fake clients (no network), {args.tasks} tasks per run")
    print()
    print("| logs | per task, 1 slot (ms) | Avg | P50 | P95 | P99 |")
    print("|---|---|---|---|---|---|")
    for logs, noop1, *_ in rows:
        for name, samples in (
            ("cycle (NextTask to NextTask)", noop1.cycles),
            ("executor round trip (slot.run)", noop1.round_trips),
            ("EM overhead (cycle - round trip)", noop1.overheads),
        ):
            ordered = sorted(samples)
            avg = sum(ordered) / len(ordered)
            print(
                f"| {logs} | {name} | {_ms(avg)} | {_ms(percentile(ordered, 50))} | "
                f"{_ms(percentile(ordered, 95))} | {_ms(percentile(ordered, 99))} |"
            )
    print()
    print("| logs | task | 1 slot (tasks/s) | 2 slots (tasks/s) | 2 slots / 1 slot |")
    print("|---|---|---|---|---|")
    for logs, noop1, noop2, sleep1, sleep2 in rows:
        print(
            f"| {logs} | noop | {noop1.tasks_per_second:.0f} | {noop2.tasks_per_second:.0f} | "
            f"{noop2.tasks_per_second / noop1.tasks_per_second:.2f} |"
        )
        print(
            f"| {logs} | sleep {SLEEP_MS} ms | {sleep1.tasks_per_second:.0f} | "
            f"{sleep2.tasks_per_second:.0f} | "
            f"{sleep2.tasks_per_second / sleep1.tasks_per_second:.2f} |"
        )
    print()
    overhead_p50 = percentile(sorted(rows[0][1].overheads), 50)
    ratio = rows[0][4].tasks_per_second / rows[0][3].tasks_per_second
    print(f"- EM overhead p50, logs off: {_ms(overhead_p50)} ms (goal < 0.5 ms)")
    print(f"- 2 slots / 1 slot on the {SLEEP_MS} ms task, logs off: {ratio:.2f} (goal >= 1.7)")


if __name__ == "__main__":
    trio.run(main)
