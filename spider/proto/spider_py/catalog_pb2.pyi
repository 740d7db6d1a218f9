from spider.proto.common import common_pb2 as _common_pb2
from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNKNOWN: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_READY: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
TASK_STATE_UNKNOWN: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_READY: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_CANCELLED: TaskState

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

class GetJobTasksRequest(_message.Message):
    __slots__ = ("job_id", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    page_size: int
    page_token: int
    def __init__(self, job_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[int] = ...) -> None: ...

class TaskSummary(_message.Message):
    __slots__ = ("task_id", "package", "task_func", "parents", "state", "instances", "running", "started_at", "ended_at", "error_summary")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_FUNC_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    task_id: _common_pb2.TaskId
    package: str
    task_func: str
    parents: _containers.RepeatedScalarFieldContainer[int]
    state: TaskState
    instances: int
    running: int
    started_at: float
    ended_at: float
    error_summary: str
    def __init__(self, task_id: _Optional[_Union[_common_pb2.TaskId, _Mapping]] = ..., package: _Optional[str] = ..., task_func: _Optional[str] = ..., parents: _Optional[_Iterable[int]] = ..., state: _Optional[_Union[TaskState, str]] = ..., instances: _Optional[int] = ..., running: _Optional[int] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., error_summary: _Optional[str] = ...) -> None: ...

class GetJobTasksResponse(_message.Message):
    __slots__ = ("job_state", "task_count", "tasks", "next_page_token")
    JOB_STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_state: _storage_pb2.JobState
    task_count: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSummary]
    next_page_token: int
    def __init__(self, job_state: _Optional[_Union[_storage_pb2.JobState, str]] = ..., task_count: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskSummary, _Mapping]]] = ..., next_page_token: _Optional[int] = ...) -> None: ...
