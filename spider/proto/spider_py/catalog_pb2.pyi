from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "resource_group_id", "created_after", "created_before", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_storage_pb2.JobState]
    resource_group_id: int
    created_after: float
    created_before: float
    page_size: int
    page_token: int
    def __init__(self, states: _Optional[_Iterable[_Union[_storage_pb2.JobState, str]]] = ..., resource_group_id: _Optional[int] = ..., created_after: _Optional[float] = ..., created_before: _Optional[float] = ..., page_size: _Optional[int] = ..., page_token: _Optional[int] = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "state", "resource_group_id", "created_at", "updated_at", "ended_at", "error_summary")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    state: _storage_pb2.JobState
    resource_group_id: int
    created_at: float
    updated_at: float
    ended_at: float
    error_summary: str
    def __init__(self, job_id: _Optional[int] = ..., state: _Optional[_Union[_storage_pb2.JobState, str]] = ..., resource_group_id: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., error_summary: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    next_page_token: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ..., next_page_token: _Optional[int] = ...) -> None: ...
