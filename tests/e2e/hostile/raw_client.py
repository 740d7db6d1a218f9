"""Raw gRPC calls (bytes in, status out) and Hypothesis strategies for request bodies.

Bodies go through grpcio without a serializer, so anything can be sent: random bytes, or a
message built field by field from its descriptor with hostile values (ids at and past 2^63,
long strings, empty oneofs), then perhaps cut short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs
import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from spider.rpc import UnaryMethod
from spider.scheduler.dispatch_service import TaskDispatchService
from spider.scheduler.service import SchedulerService
from spider.storage.service import (
    AcknowledgedInboundQueueService,
    ClusterStatusService,
    ExecutionManagerLivenessService,
    InboundQueueService,
    InstanceRevocationService,
    JobCatalogService,
    JobOrchestrationService,
    JobSubmissionService,
    ResourceGroupManagementService,
    SchedulerRegistrationService,
    SessionManagementService,
    TaskInstanceBatchService,
    TaskInstanceManagementService,
)

STORAGE_METHODS: tuple[UnaryMethod[Any, Any], ...] = tuple(
    method
    for service in (
        JobOrchestrationService,
        TaskInstanceManagementService,
        InboundQueueService,
        ResourceGroupManagementService,
        ExecutionManagerLivenessService,
        SchedulerRegistrationService,
        SessionManagementService,
        ClusterStatusService,
        JobSubmissionService,
        TaskInstanceBatchService,
        InstanceRevocationService,
        AcknowledgedInboundQueueService,
        JobCatalogService,
    )
    for method in service.rpc_methods
)
SCHEDULER_METHODS: tuple[UnaryMethod[Any, Any], ...] = (
    *SchedulerService.rpc_methods,
    *TaskDispatchService.rpc_methods,
)
CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        # A long poll a fuzzed body asked for outlives the call's deadline: not an answer.
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""What a bad request may be answered with; UNKNOWN and INTERNAL are bugs."""

CALL_DEADLINE = 2.0


def call(
    channel: grpc.Channel,
    route: str,
    body: bytes,
    metadata: Sequence[tuple[str, str | bytes]] = (),
) -> tuple[grpc.StatusCode, str]:
    """Send ``body`` to ``route`` with ``metadata``; the status code and message."""
    try:
        channel.unary_unary(route)(body, timeout=CALL_DEADLINE, metadata=tuple(metadata))
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


_EDGE_IDS = (0, 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
_UINT64 = st.one_of(st.sampled_from(_EDGE_IDS), st.integers(0, 2**64 - 1))
_INT64 = st.integers(-(2**63), 2**63 - 1)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    FieldDescriptor.TYPE_STRING: st.one_of(
        st.text(max_size=16), st.sampled_from(["127.0.0.1", "::1", "x" * 5000])
    ),
    FieldDescriptor.TYPE_BYTES: st.one_of(st.binary(max_size=32), st.just(b"\x28\xb5\x2f\xfd")),
}


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return _message_fields(field.message_type, depth + 1)
    if field.enum_type is not None:
        return st.sampled_from([value.number for value in field.enum_type.values] + [99])
    return _SCALARS[field.type]


@st.composite
def _fields(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if depth > 3:
        return values
    for field in descriptor.fields:
        if field.containing_oneof is not None and any(
            other.name in values for other in field.containing_oneof.fields
        ):
            continue
        if not draw(st.booleans()):
            continue
        strategy = _field_value(field, depth)
        values[field.name] = draw(st.lists(strategy, max_size=3) if field.is_repeated else strategy)
    return values


def _message_fields(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    return _fields(descriptor, depth)


def _build(message_type: Any, values: dict[str, Any]) -> Any:
    message = message_type()
    _fill(message, values)
    return message


def _fill(message: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.is_repeated and is_message:
            for item in value:
                _fill(getattr(message, name).add(), item)
        elif field.is_repeated:
            getattr(message, name).extend(value)
        elif is_message:
            getattr(message, name).SetInParent()
            _fill(getattr(message, name), value)
        else:
            setattr(message, name, value)


@st.composite
def request_bodies(draw: st.DrawFn, method: UnaryMethod[Any, Any]) -> bytes:
    """A body for ``method``: random bytes, or a hostile message, perhaps truncated."""
    kind = draw(st.sampled_from(["raw", "message", "truncated"]))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    descriptor = method.request_type.DESCRIPTOR
    body: bytes = _build(method.request_type, draw(_message_fields(descriptor))).SerializeToString()
    if kind == "truncated" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    return body


@attrs.define(eq=False)
class HealthProbe:
    """A thread calling a cheap RPC on each service every 50 ms; ``stalls`` lists every probe
    that got no answer within ``bound`` seconds."""

    targets: dict[str, tuple[str, int]]
    """Service name: (route, port)."""
    bound: float = 1.0
    stalls: list[str] = attrs.field(factory=list)
    probes: int = 0
    _stop: threading.Event = attrs.field(factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{port}")
            for name, (_, port) in self.targets.items()
        }
        try:
            while not self._stop.wait(0.05):
                for name, (route, _) in self.targets.items():
                    started = time.monotonic()
                    try:
                        channels[name].unary_unary(route)(b"", timeout=self.bound)
                    except grpc.RpcError as error:
                        if error.code() in (
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.UNAVAILABLE,
                        ):
                            self.stalls.append(f"{name}: {error.code().name}")
                            continue
                    self.probes += 1
                    took = time.monotonic() - started
                    if took > self.bound:
                        self.stalls.append(f"{name}: answered after {took:.2f} s")
        finally:
            for channel in channels.values():
                channel.close()
