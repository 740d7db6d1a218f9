"""Jobs of the cancel tests (``tests/packages/cancel_test_tasks``), and how to see a process go.

The package is imported into the test process as its TDL name, so that its tasks' signatures
give the graphs' types.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from spider.core.task_graph import (
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    encode_job_inputs,
    encode_task_graph,
)
from spider.core.task_outputs import decode_task_outputs
from spider.tdl import definition_of, value_codec
from tests.integration.storage_service.grpc_client import StorageClient
from tests.tdl_modules import import_as_top_level

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
PACKAGE = "cancel_test_tasks"
SLEEP_SEC = 90.0
"""How long the task to cancel would run: far longer than any test waits."""


TASKS = import_as_top_level(PACKAGES, PACKAGE)


def _one_task_job(function: Any, *inputs: tuple[type, Any]) -> tuple[bytes, bytes]:
    """A job of one task running ``function`` on ``inputs`` (type and value each): its
    compressed graph and inputs."""
    definition = definition_of(function)
    graph = TaskGraph()
    graph.insert_task(
        TaskDescriptor(
            TdlContext(PACKAGE, definition.name),
            list(definition.signature.inputs),
            list(definition.signature.outputs),
        )
    )
    payloads = [value_codec(kind).encode(value) for kind, value in inputs]
    return encode_task_graph(graph), encode_job_inputs(payloads)


def sleeping_job(pid_path: Path) -> tuple[bytes, bytes]:
    """One task that writes its executor's pid to ``pid_path`` and sleeps ``SLEEP_SEC``."""
    return _one_task_job(TASKS.write_pid_and_sleep, (str, str(pid_path)), (float, SLEEP_SEC))


def pid_job() -> tuple[bytes, bytes]:
    """One task that outputs its executor's pid."""
    return _one_task_job(TASKS.executor_pid)


def decode_pid(payload: bytes) -> int:
    pid: int = value_codec(int).decode(payload)
    return pid


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has finished running), from ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for_pid(path: Path, deadline_sec: float) -> int:
    """The pid the task writes to ``path``, polled until it is there (the task has started)."""
    deadline = time.monotonic() + deadline_sec
    while not path.exists():
        assert time.monotonic() < deadline, f"the task never wrote {path}"
        time.sleep(0.02)  # polling for the task to start; not waiting on a race
    return int(path.read_text())


def gone_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` stops running within ``seconds`` (polled from ``/proc``)."""
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)  # polling /proc within the bound under test
    return True


JOBS = "JobOrchestrationService"
JOB_DEADLINE = 60.0
KILL_BOUND = 1.0
"""What the cancel promises: the running task is dead within this many seconds of CancelJob."""


def submit(client: StorageClient, job: tuple[bytes, bytes]) -> int:
    """Register and start a job (compressed graph and inputs) in a new resource group."""
    group = client.sync(
        "ResourceGroupManagementService",
        "AddResourceGroup",
        external_resource_group_id=f"cancel-{time.monotonic_ns()}",
        password=b"",
    ).resource_group_id
    graph, inputs = job
    job_id: int = client.sync(
        JOBS,
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    ).job_id
    client.sync(JOBS, "StartJob", job_id=job_id)
    return job_id


def state_of(client: StorageClient, job_id: int) -> str:
    name: str = client.pb.storage.JobState.Name(
        client.sync(JOBS, "GetJobState", job_id=job_id).state
    )
    return name


def wait_ended(client: StorageClient, job_id: int) -> str:
    """The job's state once it has ended, polled as a client does."""
    deadline = time.monotonic() + JOB_DEADLINE
    while (state := state_of(client, job_id)) in UNFINISHED:
        assert time.monotonic() < deadline, f"job {job_id} still {state}"
        time.sleep(0.05)  # polling a job's state, as a client does; not waiting on a race
    return state


UNFINISHED = frozenset({"READY", "RUNNING", "COMMIT_READY", "CLEANUP_READY"})


def check_cancel_kills_the_running_task(client: StorageClient, pid_path: Path) -> None:
    """Cancel a job whose task sleeps long: its executor is gone within ``KILL_BOUND`` of
    CancelJob, and the next job's task runs (on a replacement executor)."""
    job_id = submit(client, sleeping_job(pid_path))
    killed = wait_for_pid(pid_path, JOB_DEADLINE)
    cancelled_at = time.monotonic()
    state = client.pb.storage.JobState.Name(client.sync(JOBS, "CancelJob", job_id=job_id).state)
    assert state == "CANCELLED"
    assert gone_within(killed, KILL_BOUND - (time.monotonic() - cancelled_at)), (
        f"executor {killed} still runs {KILL_BOUND} s after CancelJob"
    )
    assert state_of(client, job_id) == "CANCELLED"
    next_job = submit(client, pid_job())
    assert wait_ended(client, next_job) == "SUCCEEDED"
    reply = client.sync(JOBS, "GetJobOutputs", job_id=next_job)
    (payload,) = decode_task_outputs(reply.serialized_outputs)
    assert decode_pid(payload) != killed
