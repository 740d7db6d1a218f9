from spider.proto.scheduler import scheduler_pb2 as _scheduler_pb2
from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NextTasksRequest(_message.Message):
    __slots__ = ("execution_manager_id", "prev_assignments", "wait_time_ms", "max_tasks")
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    prev_assignments: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.TaskAssignmentRecord]
    wait_time_ms: int
    max_tasks: int
    def __init__(self, execution_manager_id: _Optional[int] = ..., prev_assignments: _Optional[_Iterable[_Union[_scheduler_pb2.TaskAssignmentRecord, _Mapping]]] = ..., wait_time_ms: _Optional[int] = ..., max_tasks: _Optional[int] = ...) -> None: ...

class NextTasksResponse(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.SchedulerAssignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[_scheduler_pb2.SchedulerAssignment, _Mapping]]] = ...) -> None: ...

class ItemStatus(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class RegisterTaskInstancesRequest(_message.Message):
    __slots__ = ("registrations",)
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    registrations: _containers.RepeatedCompositeFieldContainer[_storage_pb2.RegisterTaskInstanceRequest]
    def __init__(self, registrations: _Optional[_Iterable[_Union[_storage_pb2.RegisterTaskInstanceRequest, _Mapping]]] = ...) -> None: ...

class RegisterTaskInstancesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RegistrationResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RegistrationResult, _Mapping]]] = ...) -> None: ...

class RegistrationResult(_message.Message):
    __slots__ = ("execution_context", "error")
    EXECUTION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    execution_context: _storage_pb2.ExecutionContext
    error: ItemStatus
    def __init__(self, execution_context: _Optional[_Union[_storage_pb2.ExecutionContext, _Mapping]] = ..., error: _Optional[_Union[ItemStatus, _Mapping]] = ...) -> None: ...

class TaskOutcome(_message.Message):
    __slots__ = ("success", "failure")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    success: _storage_pb2.ReportTaskSuccessRequest
    failure: _storage_pb2.ReportTaskFailureRequest
    def __init__(self, success: _Optional[_Union[_storage_pb2.ReportTaskSuccessRequest, _Mapping]] = ..., failure: _Optional[_Union[_storage_pb2.ReportTaskFailureRequest, _Mapping]] = ...) -> None: ...

class ReportTaskOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[TaskOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[TaskOutcome, _Mapping]]] = ...) -> None: ...

class ReportTaskOutcomesResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[ItemStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ItemStatus, _Mapping]]] = ...) -> None: ...
