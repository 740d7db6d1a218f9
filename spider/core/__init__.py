"""Ids, wire codecs, the task-graph model and the small building blocks every service shares."""

from spider.core.data_types import (
    BoolType,
    BytesType,
    DataType,
    FloatType,
    FloatWidth,
    IntType,
    IntWidth,
    ListType,
    MapKeyType,
    MapType,
    StructType,
    ValueType,
)
from spider.core.errors import (
    CodecError,
    CompressionError,
    SessionRegressionError,
    SpiderError,
    TaskContextError,
    TaskGraphError,
    TaskOutputsFormatError,
    WireFormatError,
)
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)
from spider.core.session import SessionTracker
from spider.core.task_context import TaskContext
from spider.core.task_id import TaskId, TaskKind
from spider.core.task_outputs import decode_task_outputs, encode_task_outputs
from spider.core.wire import EMPTY_FRAME, decode_frame, encode_frame

__all__ = [
    "EMPTY_FRAME",
    "AssignmentId",
    "BoolType",
    "BytesType",
    "CodecError",
    "CompressionError",
    "DataType",
    "ExecutionManagerId",
    "FloatType",
    "FloatWidth",
    "IntType",
    "IntWidth",
    "JobId",
    "ListType",
    "MapKeyType",
    "MapType",
    "ResourceGroupId",
    "SchedulerId",
    "SessionId",
    "SessionRegressionError",
    "SessionTracker",
    "SpiderError",
    "StructType",
    "TaskContext",
    "TaskContextError",
    "TaskGraphError",
    "TaskId",
    "TaskInstanceId",
    "TaskKind",
    "TaskOutputsFormatError",
    "ValueType",
    "WireFormatError",
    "decode_frame",
    "decode_task_outputs",
    "encode_frame",
    "encode_task_outputs",
]
