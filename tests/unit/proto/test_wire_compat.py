"""Every message of Spider's protocol and of Spider-py's extensions must encode as the protobuf
wire format says, byte for byte, and decode back to itself.

``encode`` below is an independent, deliberately plain proto3 encoder driven by the message
descriptors (which the staleness test ties to ``protos/``): fields in number order, proto3
defaults omitted, sub-messages written when present. Peers that follow the spec (grpcio stubs,
Spider's C++) write exactly these bytes; the storage service tests also talk to Spider-py
through grpcio stubs generated at test time.
"""

from __future__ import annotations

import struct
from typing import Any, cast

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.proto import common, scheduler, storage
from spider.proto.common import common_pb2
from spider.proto.scheduler import scheduler_pb2
from spider.proto.spider_py import execution_pb2, jobs_pb2, status_pb2
from spider.proto.storage import storage_pb2

MODULES = (common_pb2, scheduler_pb2, storage_pb2, status_pb2, execution_pb2, jobs_pb2)
MESSAGES: list[type[Message]] = sorted(
    (
        getattr(module, name)
        for module in MODULES
        for name in module.DESCRIPTOR.message_types_by_name
    ),
    key=lambda cls: cls.DESCRIPTOR.full_name,
)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)

_VARINT, _FIXED64, _LENGTH_DELIMITED = 0, 1, 2


def _varint(value: int) -> bytes:
    value &= 2**64 - 1  # negative enum values are written as 64-bit two's complement
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _field(field: FieldDescriptor, value: Any) -> bytes:
    kind = field.type
    if kind in (field.TYPE_UINT64, field.TYPE_UINT32, field.TYPE_ENUM, field.TYPE_BOOL):
        return _key(field.number, _VARINT) + _varint(int(value))
    if kind == field.TYPE_DOUBLE:
        return _key(field.number, _FIXED64) + struct.pack("<d", value)
    if kind == field.TYPE_STRING:
        return _delimited(field.number, value.encode())
    if kind == field.TYPE_BYTES:
        return _delimited(field.number, value)
    if kind == field.TYPE_MESSAGE:
        return _delimited(field.number, encode(value))
    raise AssertionError(f"{field.full_name}: type {kind} has no encoder here; add one")


def encode(message: Message) -> bytes:
    """``message`` in the canonical proto3 encoding."""
    out = bytearray()
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # the stubs also allow upb's own class
    fields: list[FieldDescriptor] = sorted(descriptor.fields, key=lambda f: f.number)
    for field in fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            assert field.type == field.TYPE_MESSAGE, "repeated scalars would be packed"
            for item in value:
                out += _field(field, item)
        elif field.type == field.TYPE_MESSAGE or field.containing_oneof is not None:
            if message.HasField(field.name):
                out += _field(field, value)
        elif field.type == field.TYPE_DOUBLE:
            if struct.pack("<d", value) != bytes(8):  # -0.0 is not the default
                out += _field(field, value)
        elif value:
            out += _field(field, value)
    return bytes(out)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == field.TYPE_UINT64:
        return U64
    if kind == field.TYPE_UINT32:
        return U32
    if kind == field.TYPE_BOOL:
        return st.booleans()
    if kind == field.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if kind == field.TYPE_STRING:
        return st.text()
    if kind == field.TYPE_BYTES:
        return st.binary()
    if kind == field.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([value.number for value in field.enum_type.values])
    if kind == field.TYPE_MESSAGE:
        assert field.message_type is not None
        return messages(field.message_type)
    raise AssertionError(f"{field.full_name}: type {kind} has no strategy here; add one")


def messages(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type, any subset of fields set, at most one per oneof."""
    message_cls = _class_of(descriptor)
    plain = {
        field.name: st.one_of(st.none(), _field_values(field))
        for field in descriptor.fields
        if field.containing_oneof is None
    }

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        kwargs = dict(draw(st.fixed_dictionaries(plain)))
        for oneof in descriptor.oneofs:
            chosen = draw(st.sampled_from([None, *oneof.fields]))
            if chosen is not None:
                kwargs[chosen.name] = draw(_scalar(chosen))
        return message_cls(**{name: value for name, value in kwargs.items() if value is not None})

    return build()


def _field_values(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.is_repeated:
        return st.lists(_scalar(field), max_size=3)
    return _scalar(field)


def _class_of(descriptor: Descriptor) -> type[Message]:
    for cls in MESSAGES:
        if cls.DESCRIPTOR.full_name == descriptor.full_name:
            return cls
    raise AssertionError(f"no generated class for {descriptor.full_name}")


def test_every_proto_message_is_covered() -> None:
    names = {cls.DESCRIPTOR.full_name for cls in MESSAGES}
    assert {
        "common.TaskId",
        "scheduler.NextTaskResponse",
        "storage.RegisterJobRequest",
        "spider_py.status.GetClusterStatusResponse",
        "spider_py.execution.RegisterTaskInstancesRequest",
        "spider_py.jobs.WaitForJobResponse",
    } <= names
    assert len(names) >= 55


@pytest.mark.parametrize("message_cls", MESSAGES, ids=[m.DESCRIPTOR.full_name for m in MESSAGES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_messages_encode_canonically_and_round_trip(
    message_cls: type[Message], data: st.DataObject
) -> None:
    descriptor = cast(Descriptor, message_cls.DESCRIPTOR)
    message = data.draw(messages(descriptor))
    wire = encode(message)
    assert message.SerializeToString() == wire
    assert message_cls.FromString(wire) == message


def test_the_hot_messages_have_the_bytes_spider_writes() -> None:
    # Written out by hand from the proto files, one field key and value at a time.
    register = storage.RegisterTaskInstanceRequest(
        job_id=5, task_id=common.TaskId(index=300), execution_manager_id=7, session_id=1
    )
    assert register.SerializeToString() == bytes.fromhex("0805120308ac0218072001")
    record = scheduler.TaskAssignmentRecord(id=9, **{"from": 2})
    assert record.SerializeToString() == bytes.fromhex("08091002")
    commit = scheduler.NextTaskResponse(
        assignment=scheduler.SchedulerAssignment(
            id=1, task_id=common.TaskId(commit=common.Void()), scheduler_id=2
        )
    )
    assert commit.SerializeToString() == bytes.fromhex("0a080801220212002802")
    no_task = scheduler.NextTaskResponse(no_task=common.Void())
    assert no_task.SerializeToString() == bytes.fromhex("1200")
    assert scheduler.NextTaskResponse.FromString(b"\x12\x00").WhichOneof("result") == "no_task"
