"""Storage service throughput and recovery time, on SQLite and on MariaDB.

* **Throughput**: task instances per second through a real ``python -m spider.storage`` process:
  ``--clients`` concurrent Trio clients (default 16, over ``spider.rpc``) each take ready tasks
  of one started job and do ``RegisterTaskInstance`` + ``ReportTaskSuccess`` (the two calls an
  EM makes per task). The timed part is from the first registration to the last report.
  Storage's shutdown log line gives the database commits (fsyncs on SQLite) of the whole run,
  setup included, and the writes they carried: "commits/task" is the group commit's effect.
* **Recovery**: ``--jobs`` Running jobs of ``--tasks`` tasks each (default 1,000 x 100) are
  written, then a new ``StorageState`` is created on the same database: the time of schema
  check, new session and job-cache recovery, which is what a restarted service spends before it
  serves.

MariaDB runs on a private server started with ``tests/mariadb_server.py`` (Debian's
``mariadb-server``); without it, its rows are skipped with a note. Prints markdown tables.

Run: ``python benchmarks/storage_throughput.py [--instances N] [--clients N] [--jobs N]
[--tasks N] [--backend sqlite|mariadb ...]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import attrs
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.* helpers (graphs, the MariaDB server, the process)

from spider.core.ids import ExecutionManagerId, SessionId  # noqa: E402
from spider.proto import common  # noqa: E402
from spider.proto import storage as storage_pb  # noqa: E402
from spider.rpc import Channel, Endpoint, connect_channel  # noqa: E402
from spider.storage import StorageConfig, StorageState  # noqa: E402
from spider.storage.db import DatabaseConfig, SqliteConfig, open_database  # noqa: E402
from tests.e2e.storage.storage_process import running_storage, write_config  # noqa: E402
from tests.unit.storage.jobs import flat, submission  # noqa: E402

JOBS = storage_pb.JobOrchestrationServiceStub
INSTANCES = storage_pb.TaskInstanceManagementServiceStub
DEADLINE = 60.0


@attrs.frozen
class Throughput:
    backend: str
    instances: int
    clients: int
    seconds: float
    transactions: int | None
    """Committed transactions of the whole storage run (from its shutdown log)."""
    writes: int | None


@attrs.frozen
class Recovery:
    backend: str
    jobs: int
    tasks: int
    write_seconds: float
    recover_seconds: float


async def _submit(channel: Channel, tasks: int) -> tuple[int, list[int]]:
    """A started job of ``tasks`` independent tasks, and its task indices."""
    graph, inputs = submission(flat(tasks), list(range(tasks)))
    group = await channel.call(
        storage_pb.ResourceGroupManagementServiceStub.add_resource_group,
        storage_pb.AddResourceGroupRequest(
            external_resource_group_id=f"bench-{time.monotonic_ns()}", password=b"pw"
        ),
        deadline=DEADLINE,
    )
    job = await channel.call(
        JOBS.register_job,
        storage_pb.RegisterJobRequest(
            resource_group_id=group.resource_group_id,
            compressed_serialized_task_graph=graph,
            compressed_serialized_inputs=inputs,
        ),
        deadline=DEADLINE,
    )
    await channel.call(
        JOBS.start_job, storage_pb.JobIdRequest(job_id=job.job_id), deadline=DEADLINE
    )
    return job.job_id, list(range(tasks))


async def _throughput(port: int, instances: int, clients: int) -> float:
    async with connect_channel(Endpoint("127.0.0.1", port)) as channel:
        em = await channel.call(
            storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
            storage_pb.RegisterExecutionManagerRequest(ip_address="127.0.0.1"),
            deadline=DEADLINE,
        )
        em_id = ExecutionManagerId(em.registration.execution_manager_id)
        session = SessionId(em.registration.session_id)
        job_id, indices = await _submit(channel, instances)
        send, receive = trio.open_memory_channel[int](len(indices))
        for index in indices:
            send.send_nowait(index)
        send.close()
        output = b"\x01\x00\x00\x00\x01\x00\x00\x00\x05"  # one msgpack int

        async def client() -> None:
            async for index in receive:
                task_id = common.TaskId(index=index)
                registered = await channel.call(
                    INSTANCES.register_task_instance,
                    storage_pb.RegisterTaskInstanceRequest(
                        job_id=job_id,
                        task_id=task_id,
                        execution_manager_id=em_id,
                        session_id=session,
                    ),
                    deadline=DEADLINE,
                )
                instance_id = registered.execution_context.task_instance_id
                await channel.call(
                    INSTANCES.report_task_success,
                    storage_pb.ReportTaskSuccessRequest(
                        job_id=job_id,
                        task_id=task_id,
                        task_instance_id=instance_id,
                        execution_manager_id=em_id,
                        session_id=session,
                        serialized_outputs=output,
                    ),
                    deadline=DEADLINE,
                )

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client)
        elapsed = time.perf_counter() - started
        state = await channel.call(JOBS.get_job_state, storage_pb.JobIdRequest(job_id=job_id))
        assert state.state == storage_pb.JobState.COMMIT_READY, state
        return elapsed


def measure_throughput(
    backend: str, database: DatabaseConfig, instances: int, clients: int
) -> Throughput:
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(Path(directory), database)
        with running_storage("--config", config, cwd=Path(directory)) as storage:
            seconds = trio.run(_throughput, storage.port, instances, clients)
            storage.stop()
    counted = [record for record in storage.records() if "transactions" in record]
    transactions = counted[-1]["transactions"] if counted else None
    writes = counted[-1]["writes"] if counted else None
    return Throughput(backend, instances, clients, seconds, transactions, writes)


async def _recovery(database: DatabaseConfig, jobs: int, tasks: int) -> tuple[float, float]:
    config = StorageConfig()
    graph, inputs = submission(flat(tasks), list(range(tasks)))
    writer = open_database(database)
    started = time.perf_counter()
    try:
        state = await StorageState.create(config, writer)
        group = await state.add_resource_group("recovery", b"pw")
        for _ in range(jobs):
            job_id = await state.lifecycle.register_job(group, graph, inputs)
            await state.lifecycle.start_job(job_id)
    finally:
        writer.close()
    written = time.perf_counter() - started
    reader = open_database(database)
    started = time.perf_counter()
    try:
        state = await StorageState.create(config, reader)
    finally:
        reader.close()
    recovered = time.perf_counter() - started
    assert sum(state.recovery.recovered.values()) == jobs, state.recovery
    return written, recovered


def measure_recovery(backend: str, database: DatabaseConfig, jobs: int, tasks: int) -> Recovery:
    written, recovered = trio.run(_recovery, database, jobs, tasks)
    return Recovery(backend, jobs, tasks, written, recovered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2000, help="task instances per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--jobs", type=int, default=1000, help="Running jobs to recover")
    parser.add_argument("--tasks", type=int, default=100, help="tasks per recovered job")
    parser.add_argument(
        "--backend", action="append", choices=["sqlite", "mariadb"], help="default: both"
    )
    args = parser.parse_args()
    backends: list[str] = args.backend or ["sqlite", "mariadb"]
    throughput: list[Throughput] = []
    recovery: list[Recovery] = []
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = None
        if "mariadb" in backends:
            from tests.mariadb_server import find_program, running_mariadb

            if find_program("mariadbd") is None:
                print("note: mariadbd is not installed; skipping MariaDB", file=sys.stderr)
                backends.remove("mariadb")
            else:
                server = stack.enter_context(running_mariadb(directory / "mariadb"))

        def fresh(backend: str, name: str) -> DatabaseConfig:
            if backend == "sqlite":
                return SqliteConfig(directory / f"{name}.db")
            assert server is not None
            return stack.enter_context(server.fresh_database())

        for backend in backends:
            print(f"{backend}: throughput ({args.instances} instances)...", file=sys.stderr)
            throughput.append(
                measure_throughput(
                    backend, fresh(backend, "throughput"), args.instances, args.clients
                )
            )
            print(f"{backend}: recovery ({args.jobs} x {args.tasks})...", file=sys.stderr)
            recovery.append(
                measure_recovery(backend, fresh(backend, "recovery"), args.jobs, args.tasks)
            )

    print("## Task instances per second (RegisterTaskInstance + ReportTaskSuccess)\n")
    print(
        "| backend | clients | instances | seconds | instances/s | commits | writes | commits/task |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in throughput:
        rate = row.instances / row.seconds
        per_task = "?" if row.transactions is None else f"{row.transactions / row.instances:.3f}"
        print(
            f"| {row.backend} | {row.clients} | {row.instances} | {row.seconds:.2f} | {rate:.0f} "
            f"| {row.transactions} | {row.writes} | {per_task} |"
        )
    print("\n## Recovery of Running jobs at startup\n")
    print("| backend | jobs | tasks/job | write (s) | recover (s) | jobs/s recovered |")
    print("|---|---:|---:|---:|---:|---:|")
    for recovered in recovery:
        rate = recovered.jobs / recovered.recover_seconds
        print(
            f"| {recovered.backend} | {recovered.jobs} | {recovered.tasks} "
            f"| {recovered.write_seconds:.1f} | {recovered.recover_seconds:.2f} | {rate:.0f} |"
        )


if __name__ == "__main__":
    main()
