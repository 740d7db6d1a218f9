from spider.proto.storage import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStatusResponse(_message.Message):
    __slots__ = ("session_id", "execution_managers", "dead_execution_managers", "dead_execution_managers_listed_max", "task_lane", "commit_lane", "cleanup_lane", "live_task_instances", "cached_jobs", "terminated_job_retention_sec", "stored_jobs", "database", "task_outcomes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MANAGERS_FIELD_NUMBER: _ClassVar[int]
    DEAD_EXECUTION_MANAGERS_FIELD_NUMBER: _ClassVar[int]
    DEAD_EXECUTION_MANAGERS_LISTED_MAX_FIELD_NUMBER: _ClassVar[int]
    TASK_LANE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_LANE_FIELD_NUMBER: _ClassVar[int]
    CLEANUP_LANE_FIELD_NUMBER: _ClassVar[int]
    LIVE_TASK_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    CACHED_JOBS_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_JOB_RETENTION_SEC_FIELD_NUMBER: _ClassVar[int]
    STORED_JOBS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    TASK_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    execution_managers: _containers.RepeatedCompositeFieldContainer[ExecutionManagerStatus]
    dead_execution_managers: int
    dead_execution_managers_listed_max: int
    task_lane: LaneDepth
    commit_lane: LaneDepth
    cleanup_lane: LaneDepth
    live_task_instances: int
    cached_jobs: _containers.RepeatedCompositeFieldContainer[JobStateCount]
    terminated_job_retention_sec: float
    stored_jobs: _containers.RepeatedCompositeFieldContainer[JobStateCount]
    database: DatabaseStatus
    task_outcomes: _containers.RepeatedCompositeFieldContainer[TaskOutcomeCount]
    def __init__(self, session_id: _Optional[int] = ..., execution_managers: _Optional[_Iterable[_Union[ExecutionManagerStatus, _Mapping]]] = ..., dead_execution_managers: _Optional[int] = ..., dead_execution_managers_listed_max: _Optional[int] = ..., task_lane: _Optional[_Union[LaneDepth, _Mapping]] = ..., commit_lane: _Optional[_Union[LaneDepth, _Mapping]] = ..., cleanup_lane: _Optional[_Union[LaneDepth, _Mapping]] = ..., live_task_instances: _Optional[int] = ..., cached_jobs: _Optional[_Iterable[_Union[JobStateCount, _Mapping]]] = ..., terminated_job_retention_sec: _Optional[float] = ..., stored_jobs: _Optional[_Iterable[_Union[JobStateCount, _Mapping]]] = ..., database: _Optional[_Union[DatabaseStatus, _Mapping]] = ..., task_outcomes: _Optional[_Iterable[_Union[TaskOutcomeCount, _Mapping]]] = ...) -> None: ...

class TaskOutcomeCount(_message.Message):
    __slots__ = ("outcome", "count")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    count: int
    def __init__(self, outcome: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DatabaseStatus(_message.Message):
    __slots__ = ("writable", "problem", "unwritable_for_sec", "last_outage_sec", "since_last_outage_sec")
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    UNWRITABLE_FOR_SEC_FIELD_NUMBER: _ClassVar[int]
    LAST_OUTAGE_SEC_FIELD_NUMBER: _ClassVar[int]
    SINCE_LAST_OUTAGE_SEC_FIELD_NUMBER: _ClassVar[int]
    writable: bool
    problem: str
    unwritable_for_sec: float
    last_outage_sec: float
    since_last_outage_sec: float
    def __init__(self, writable: _Optional[bool] = ..., problem: _Optional[str] = ..., unwritable_for_sec: _Optional[float] = ..., last_outage_sec: _Optional[float] = ..., since_last_outage_sec: _Optional[float] = ...) -> None: ...

class ExecutionManagerStatus(_message.Message):
    __slots__ = ("execution_manager_id", "ip_address", "alive", "seconds_since_heartbeat", "running_task_instances")
    EXECUTION_MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_SINCE_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    execution_manager_id: int
    ip_address: str
    alive: bool
    seconds_since_heartbeat: float
    running_task_instances: int
    def __init__(self, execution_manager_id: _Optional[int] = ..., ip_address: _Optional[str] = ..., alive: _Optional[bool] = ..., seconds_since_heartbeat: _Optional[float] = ..., running_task_instances: _Optional[int] = ...) -> None: ...

class LaneDepth(_message.Message):
    __slots__ = ("depth", "capacity")
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    depth: int
    capacity: int
    def __init__(self, depth: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class JobStateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: _storage_pb2.JobState
    count: int
    def __init__(self, state: _Optional[_Union[_storage_pb2.JobState, str]] = ..., count: _Optional[int] = ...) -> None: ...
