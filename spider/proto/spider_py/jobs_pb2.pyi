from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("job", "start")
    JOB_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    job: _storage_pb2.RegisterJobRequest
    start: bool
    def __init__(self, job: _Optional[_Union[_storage_pb2.RegisterJobRequest, _Mapping]] = ..., start: _Optional[bool] = ...) -> None: ...

class WaitForJobRequest(_message.Message):
    __slots__ = ("job_id", "wait_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    wait_ms: int
    def __init__(self, job_id: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class WaitForJobResponse(_message.Message):
    __slots__ = ("state", "serialized_outputs", "error_message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SERIALIZED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: _storage_pb2.JobState
    serialized_outputs: bytes
    error_message: str
    def __init__(self, state: _Optional[_Union[_storage_pb2.JobState, str]] = ..., serialized_outputs: _Optional[bytes] = ..., error_message: _Optional[str] = ...) -> None: ...

class RunJobRequest(_message.Message):
    __slots__ = ("job", "wait_ms")
    JOB_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    job: _storage_pb2.RegisterJobRequest
    wait_ms: int
    def __init__(self, job: _Optional[_Union[_storage_pb2.RegisterJobRequest, _Mapping]] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class RunJobResponse(_message.Message):
    __slots__ = ("job_id", "outcome")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    outcome: WaitForJobResponse
    def __init__(self, job_id: _Optional[int] = ..., outcome: _Optional[_Union[WaitForJobResponse, _Mapping]] = ...) -> None: ...
