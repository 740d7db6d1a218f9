from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class WaitRevokedInstancesRequest(_message.Message):
    __slots__ = ("execution_manager_id", "session_id", "known_revision", "wait_time_ms")
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REVISION_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    session_id: int
    known_revision: int
    wait_time_ms: int
    def __init__(self, execution_manager_id: _Optional[int] = ..., session_id: _Optional[int] = ..., known_revision: _Optional[int] = ..., wait_time_ms: _Optional[int] = ...) -> None: ...

class WaitRevokedInstancesResponse(_message.Message):
    __slots__ = ("session_id", "revision", "task_instance_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TASK_INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    revision: int
    task_instance_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[int] = ..., revision: _Optional[int] = ..., task_instance_ids: _Optional[_Iterable[int]] = ...) -> None: ...
