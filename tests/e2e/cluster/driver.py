"""Driving jobs through storage's gRPC API with grpcio stubs, and reading the tasks' journal.

The stubs are generated from ``protos/`` (Google's protobuf and grpcio), and the graphs and
inputs are Spider's byte formats, so these tests also prove wire compatibility.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import grpc

from spider.core.task_graph import encode_job_inputs, encode_task_graph
from spider.core.task_outputs import decode_task_outputs
from tests.integration.storage_service.grpc_client import StorageClient

from .examples import Job, decode

JOBS = "JobOrchestrationService"
JOB_DEADLINE = 90.0
POLL_INTERVAL = 0.05
UNFINISHED = frozenset({"READY", "RUNNING", "COMMIT_READY", "CLEANUP_READY"})
# While storage restarts, calls fail with these; the driver tries again until its deadline.
STORAGE_DOWN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@attrs.frozen
class Ended:
    """A job's final state and when the driver first saw it (``time.time()``)."""

    state: str
    at: float


@attrs.define(eq=False)
class JobDriver:
    """Submits jobs to one resource group and polls them, as a client would."""

    client: StorageClient
    group: int = 0
    password: bytes = b""
    """The password ``submit`` gives the group it creates."""

    def call(self, method: str, **fields: Any) -> Any:
        """``JobOrchestrationService.method``, retried while storage is down (a restart)."""
        deadline = time.monotonic() + JOB_DEADLINE
        while True:
            try:
                return self.client.sync(JOBS, method, timeout=5.0, **fields)
            except grpc.RpcError as error:
                if error.code() not in STORAGE_DOWN or time.monotonic() > deadline:
                    raise
            time.sleep(POLL_INTERVAL)  # pacing retries against a restarting storage

    def submit(self, job: Job) -> int:
        """Register and start ``job``; its id."""
        if not self.group:
            self.group = self.client.sync(
                "ResourceGroupManagementService",
                "AddResourceGroup",
                external_resource_group_id=f"e2e-{time.monotonic_ns()}",
                password=self.password,
            ).resource_group_id
        job_id: int = self.call(
            "RegisterJob",
            resource_group_id=self.group,
            compressed_serialized_task_graph=encode_task_graph(job.graph),
            compressed_serialized_inputs=encode_job_inputs(job.inputs),
        ).job_id
        self.call("StartJob", job_id=job_id)
        return job_id

    def state(self, job_id: int) -> str:
        name: str = self.client.pb.storage.JobState.Name(
            self.call("GetJobState", job_id=job_id).state
        )
        return name

    def wait(
        self,
        job_id: int,
        check: Callable[[], None] = lambda: None,
        within: float = JOB_DEADLINE,
    ) -> Ended:
        """Poll until the job ends (``check`` runs between polls, e.g. that processes live);
        fail if it has not ended ``within`` seconds."""
        deadline = time.monotonic() + within
        while (state := self.state(job_id)) in UNFINISHED:
            check()
            assert time.monotonic() < deadline, f"job {job_id} still {state}"
            time.sleep(POLL_INTERVAL)  # polling a job's state, as a client does
        return Ended(state, time.time())

    def error(self, job_id: int) -> str:
        reply = self.call("GetJobError", job_id=job_id)
        return str(reply)

    def outputs(self, job_id: int, job: Job) -> list[Any]:
        reply = self.call("GetJobOutputs", job_id=job_id)
        return [
            decode(job.output_type, payload)
            for payload in decode_task_outputs(reply.serialized_outputs)
        ]

    def run(
        self, job: Job, check: Callable[[], None] = lambda: None, within: float = JOB_DEADLINE
    ) -> tuple[int, Ended]:
        """Submit, wait, check that it Succeeded with the expected outputs."""
        job_id = self.submit(job)
        ended = self.wait(job_id, check, within)
        assert ended.state == "SUCCEEDED", self.error(job_id)
        assert self.outputs(job_id, job) == job.expected
        return job_id, ended


@attrs.frozen
class JournalLine:
    """One line of the examples' journal: a task of a job started or ended at ``at``."""

    job_id: int
    task: str
    at: float
    phase: str


def read_journal(state_dir: Path) -> list[JournalLine]:
    path = state_dir / "journal.log"
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        job, task, at, phase = text.split()
        lines.append(JournalLine(int(job), task, float(at), phase))
    return lines


def runs_after_end(journal: list[JournalLine], ended: dict[int, Ended]) -> list[JournalLine]:
    """Task starts of finished jobs that came after the driver saw the job end: must be none."""
    return [
        line
        for line in journal
        if line.job_id in ended and line.phase == "start" and line.at > ended[line.job_id].at
    ]
