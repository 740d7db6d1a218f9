"""A storage client made of grpcio stubs generated at test time from ``protos/``.

The stubs are an independent implementation of the wire protocol (Google's protobuf and grpcio,
not betterproto and grpclib), so these tests check interoperability as well as behaviour.
Calls block; async tests use ``StorageClient.call``, which runs them in a worker thread.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import grpc
import ormsgpack
import trio
from google.protobuf import message_factory

from spider.core.task_graph import TaskGraph
from spider.core.wire import decode_frame, encode_frame

ROOT = Path(__file__).resolve().parents[3]
PROTO_FILES = (
    "common/common.proto",
    "storage/storage.proto",
    "spider_py/status.proto",
    "spider_py/jobs.proto",
)
CALL_TIMEOUT = 30.0

SERVICES = (
    "JobOrchestrationService",
    "TaskInstanceManagementService",
    "InboundQueueService",
    "ResourceGroupManagementService",
    "ExecutionManagerLivenessService",
    "SchedulerRegistrationService",
    "SessionManagementService",
)
EXTENSION_SERVICES = ("ClusterStatusService",)
"""Spider-py's own services (package ``spider_py.status``), not Spider's protocol."""
JOBS_EXTENSION_SERVICES = ("JobSubmissionService",)
"""Spider-py's jobs extension (package ``spider_py.jobs``)."""


@attrs.frozen
class StubModules:
    """The generated modules: ``common_pb2``, ``storage_pb2``, ``storage_pb2_grpc``, and
    Spider-py's extensions ``status_pb2``, ``status_pb2_grpc``, ``jobs_pb2``, ``jobs_pb2_grpc``."""

    common: Any
    storage: Any
    storage_grpc: Any
    status: Any
    status_grpc: Any
    jobs: Any
    jobs_grpc: Any


@contextmanager
def generated_stubs(out: Path) -> Iterator[StubModules]:
    """Generate and import the grpcio modules in ``out``; unimport them afterwards."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *PROTO_FILES,
        ],
        cwd=ROOT / "protos",
        check=True,
    )
    # protoc's output imports `common.common_pb2` as a top-level package.
    sys.path.insert(0, str(out))
    try:
        modules: list[ModuleType] = [
            importlib.import_module(name)
            for name in (
                "common.common_pb2",
                "storage.storage_pb2",
                "storage.storage_pb2_grpc",
                "spider_py.status_pb2",
                "spider_py.status_pb2_grpc",
                "spider_py.jobs_pb2",
                "spider_py.jobs_pb2_grpc",
            )
        ]
        yield StubModules(*modules)
    finally:
        sys.path.remove(str(out))
        packages = ("common", "storage", "spider_py")
        for name in [n for n in sys.modules if n.split(".")[0] in packages]:
            del sys.modules[name]


@attrs.frozen
class _WithMetadata(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds ``metadata`` to every unary call."""

    metadata: tuple[tuple[str, str | bytes], ...]

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details._replace(
            metadata=(*(client_call_details.metadata or ()), *self.metadata)
        )
        return continuation(details, request)


@attrs.define(eq=False)
class StorageClient:
    """One grpcio channel to a storage service and a stub per service."""

    pb: StubModules
    channel: grpc.Channel
    stubs: dict[str, Any]

    @classmethod
    def connect(
        cls,
        pb: StubModules,
        port: int,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        host: str = "127.0.0.1",
        metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> StorageClient:
        """A channel to storage: plaintext, or TLS with ``credentials``; ``metadata`` goes with
        every call (a credential on a plaintext channel, where grpcio refuses call
        credentials)."""
        address = f"{host}:{port}"
        channel = (
            grpc.insecure_channel(address)
            if credentials is None
            else grpc.secure_channel(address, credentials)
        )
        if metadata:
            channel = grpc.intercept_channel(channel, _WithMetadata(tuple(metadata)))
        stubs = {name: getattr(pb.storage_grpc, f"{name}Stub")(channel) for name in SERVICES}
        stubs |= {
            name: getattr(pb.status_grpc, f"{name}Stub")(channel) for name in EXTENSION_SERVICES
        }
        stubs |= {
            name: getattr(pb.jobs_grpc, f"{name}Stub")(channel) for name in JOBS_EXTENSION_SERVICES
        }
        return cls(pb, channel, stubs)

    def close(self) -> None:
        self.channel.close()

    def sync(
        self, service: str, method: str, *, timeout: float = CALL_TIMEOUT, **fields: Any
    ) -> Any:
        """Call ``service.method`` with a request built from ``fields``; blocks."""
        module = self.pb.storage
        if service in EXTENSION_SERVICES:
            module = self.pb.status
        elif service in JOBS_EXTENSION_SERVICES:
            module = self.pb.jobs
        descriptor = module.DESCRIPTOR.services_by_name[service]
        request_type = message_factory.GetMessageClass(
            descriptor.methods_by_name[method].input_type
        )
        stub_method = getattr(self.stubs[service], method)
        return stub_method(request_type(**fields), timeout=timeout)

    async def call(
        self, service: str, method: str, *, deadline: float = CALL_TIMEOUT, **fields: Any
    ) -> Any:
        """``sync`` in a worker thread; ``deadline`` is the gRPC deadline in seconds."""
        return await trio.to_thread.run_sync(
            functools.partial(self.sync, service, method, timeout=deadline, **fields)
        )

    async def status(
        self, service: str, method: str, *, deadline: float = CALL_TIMEOUT, **fields: Any
    ) -> grpc.StatusCode:
        """The status code of a call that must fail."""
        try:
            await self.call(service, method, deadline=deadline, **fields)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
        raise AssertionError(f"{service}.{method}({fields}) succeeded; expected an error")

    def task_id(self, index: int | None = None, *, kind: str = "index") -> Any:
        """A ``common.TaskId``: ``task_id(3)``, ``task_id(kind="commit")``."""
        if index is not None:
            return self.pb.common.TaskId(index=index)
        return self.pb.common.TaskId(**{kind: self.pb.common.Void()})


def pack(value: int) -> bytes:
    return ormsgpack.packb(value)


def unpack(payload: bytes) -> int:
    value = ormsgpack.unpackb(payload)
    assert isinstance(value, int)
    return value


def task_outputs(graph: TaskGraph, index: int, serialized_inputs: bytes) -> bytes:
    """What summing task ``index`` reports: output ``k`` is ``sum(inputs) + 10 * index + k``."""
    inputs = [unpack(payload) for payload in decode_frame(serialized_inputs)]
    num_outputs = len(graph.task(index).outputs)
    return encode_frame([pack(sum(inputs) + 10 * index + k) for k in range(num_outputs)])


def task_key(task_id: Any) -> str:
    """``"3"``, ``"commit"`` or ``"cleanup"`` for a ``common.TaskId``."""
    kind = task_id.WhichOneof("kind")
    return str(task_id.index) if kind == "index" else str(kind)


LANE_METHODS: dict[str, str] = {
    "index": "PollReadyTasks",
    "commit": "PollReadyCommitTasks",
    "cleanup": "PollReadyCleanupTasks",
}


@attrs.define(eq=False)
class GrpcEm:
    """Plays scheduler and EM over gRPC: polls a lane, registers and reports what it finds.

    ``registered`` counts the instances registered per (job, task key), so tests can check that
    finished work is never handed out again.
    """

    client: StorageClient
    em_id: int
    session_id: int
    registered: dict[tuple[int, str], int] = attrs.field(factory=dict)

    @classmethod
    def register(cls, client: StorageClient) -> GrpcEm:
        reply = client.sync(
            "ExecutionManagerLivenessService", "RegisterExecutionManager", ip_address="127.0.0.1"
        )
        registration = reply.registration
        return cls(client, registration.execution_manager_id, registration.session_id)

    def poll(self, lane: str = "index", max_items: int = 1000, wait_ms: int = 0) -> list[Any]:
        reply = self.client.sync(
            "InboundQueueService", LANE_METHODS[lane], max_items=max_items, wait_ms=wait_ms
        )
        assert reply.tasks.session_id == self.session_id
        return list(reply.tasks.tasks)

    def register_instance(self, job_id: int, task_id: Any) -> Any:
        key = (job_id, task_key(task_id))
        self.registered[key] = self.registered.get(key, 0) + 1
        reply = self.client.sync(
            "TaskInstanceManagementService",
            "RegisterTaskInstance",
            job_id=job_id,
            task_id=task_id,
            execution_manager_id=self.em_id,
            session_id=self.session_id,
        )
        return reply.execution_context

    def succeed(self, job_id: int, task_id: Any, context: Any, outputs: bytes) -> None:
        self.client.sync(
            "TaskInstanceManagementService",
            "ReportTaskSuccess",
            job_id=job_id,
            task_id=task_id,
            task_instance_id=context.task_instance_id,
            execution_manager_id=self.em_id,
            session_id=self.session_id,
            serialized_outputs=outputs,
        )

    def fail(self, job_id: int, task_id: Any, context: Any, message: str) -> None:
        self.client.sync(
            "TaskInstanceManagementService",
            "ReportTaskFailure",
            job_id=job_id,
            task_id=task_id,
            task_instance_id=context.task_instance_id,
            execution_manager_id=self.em_id,
            session_id=self.session_id,
            error_message=message,
        )

    def run(self, graphs: dict[int, TaskGraph], entry: Any) -> None:
        """Register and succeed one ready-queue entry."""
        context = self.register_instance(entry.job_id, entry.task_id)
        outputs = b""
        if entry.task_id.WhichOneof("kind") == "index":
            outputs = task_outputs(
                graphs[entry.job_id], entry.task_id.index, context.serialized_task_io
            )
        self.succeed(entry.job_id, entry.task_id, context, outputs)

    def run_until_idle(
        self, graphs: dict[int, TaskGraph], lanes: Sequence[str] = ("index", "commit", "cleanup")
    ) -> int:
        """Run ready work until every lane is empty; the number of entries run."""
        ran = 0
        while True:
            entries = [entry for lane in lanes for entry in self.poll(lane)]
            if not entries:
                return ran
            for entry in entries:
                self.run(graphs, entry)
                ran += 1
