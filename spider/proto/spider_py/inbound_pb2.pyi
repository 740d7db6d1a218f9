from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Lane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANE_UNSPECIFIED: _ClassVar[Lane]
    LANE_TASK: _ClassVar[Lane]
    LANE_COMMIT: _ClassVar[Lane]
    LANE_CLEANUP: _ClassVar[Lane]
LANE_UNSPECIFIED: Lane
LANE_TASK: Lane
LANE_COMMIT: Lane
LANE_CLEANUP: Lane

class PollReadyTasksRequest(_message.Message):
    __slots__ = ("lane", "max_items", "wait_ms", "session_id", "acknowledged_batch")
    LANE_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BATCH_FIELD_NUMBER: _ClassVar[int]
    lane: Lane
    max_items: int
    wait_ms: int
    session_id: int
    acknowledged_batch: int
    def __init__(self, lane: _Optional[_Union[Lane, str]] = ..., max_items: _Optional[int] = ..., wait_ms: _Optional[int] = ..., session_id: _Optional[int] = ..., acknowledged_batch: _Optional[int] = ...) -> None: ...

class PollReadyTasksResponse(_message.Message):
    __slots__ = ("session_id", "batch", "tasks")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    batch: int
    tasks: _containers.RepeatedCompositeFieldContainer[_storage_pb2.ReadyTask]
    def __init__(self, session_id: _Optional[int] = ..., batch: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_storage_pb2.ReadyTask, _Mapping]]] = ...) -> None: ...
