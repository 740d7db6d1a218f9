"""The task executor protocol and the parent's handle on an executor subprocess.

``protocol`` defines the frames both sides exchange (``docs/executor-protocol.md``);
``ExecutorProcess`` spawns, talks to and ends one executor from Trio.
"""

from spider.executor.errors import (
    ExecutorError,
    ExecutorExited,
    ExecutorProtocolError,
    ExecutorStartError,
    ExecutorUnusableError,
    FrameTooLargeError,
)
from spider.executor.exit_status import ExitStatus
from spider.executor.pipe import FramedPipe
from spider.executor.process import ExecutorConfig, ExecutorProcess, default_executor_command
from spider.executor.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Execute,
    Failure,
    FrameKind,
    Ready,
    Request,
    Response,
    Shutdown,
    Success,
    TaskOutcome,
    TooLarge,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "Execute",
    "ExecutorConfig",
    "ExecutorError",
    "ExecutorExited",
    "ExecutorProcess",
    "ExecutorProtocolError",
    "ExecutorStartError",
    "ExecutorUnusableError",
    "ExitStatus",
    "Failure",
    "FrameKind",
    "FrameTooLargeError",
    "FramedPipe",
    "Ready",
    "Request",
    "Response",
    "Shutdown",
    "Success",
    "TaskOutcome",
    "TooLarge",
    "default_executor_command",
]
