from spider.proto.common import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskAssignmentRecord(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ..., **kwargs) -> None: ...

class NextTaskRequest(_message.Message):
    __slots__ = ("execution_manager_id", "prev_assignment", "wait_time_ms")
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    prev_assignment: TaskAssignmentRecord
    wait_time_ms: int
    def __init__(self, execution_manager_id: _Optional[int] = ..., prev_assignment: _Optional[_Union[TaskAssignmentRecord, _Mapping]] = ..., wait_time_ms: _Optional[int] = ...) -> None: ...

class SchedulerAssignment(_message.Message):
    __slots__ = ("id", "resource_group_id", "job_id", "task_id", "scheduler_id", "session_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    resource_group_id: int
    job_id: int
    task_id: _common_pb2.TaskId
    scheduler_id: int
    session_id: int
    def __init__(self, id: _Optional[int] = ..., resource_group_id: _Optional[int] = ..., job_id: _Optional[int] = ..., task_id: _Optional[_Union[_common_pb2.TaskId, _Mapping]] = ..., scheduler_id: _Optional[int] = ..., session_id: _Optional[int] = ...) -> None: ...

class NextTaskResponse(_message.Message):
    __slots__ = ("assignment", "no_task")
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    NO_TASK_FIELD_NUMBER: _ClassVar[int]
    assignment: SchedulerAssignment
    no_task: _common_pb2.Void
    def __init__(self, assignment: _Optional[_Union[SchedulerAssignment, _Mapping]] = ..., no_task: _Optional[_Union[_common_pb2.Void, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("execution_manager_id",)
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    def __init__(self, execution_manager_id: _Optional[int] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("execution_manager_id", "prev_assignments")
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    prev_assignments: _containers.RepeatedCompositeFieldContainer[TaskAssignmentRecord]
    def __init__(self, execution_manager_id: _Optional[int] = ..., prev_assignments: _Optional[_Iterable[_Union[TaskAssignmentRecord, _Mapping]]] = ...) -> None: ...
