"""The task executor protocol and the parent's handle on an executor subprocess.

``protocol`` defines the frames both sides exchange (``docs/executor-protocol.md``);
``ExecutorProcess`` spawns, talks to and ends one executor from Trio.
"""

import importlib
from typing import TYPE_CHECKING, Any

from spider.executor.errors import (
    ExecutorError,
    ExecutorExited,
    ExecutorProtocolError,
    ExecutorStartError,
    ExecutorUnusableError,
    FrameTooLargeError,
)
from spider.executor.exit_status import ExecutorExitStatus
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

if TYPE_CHECKING:
    from spider.executor.pipe import FramedPipe
    from spider.executor.process import ExecutorConfig, ExecutorProcess, default_executor_command

# The parent-side names need trio; the executor program imports this package for the protocol
# only, and importing trio there costs a large share of every executor's start-up.
_LAZY = {
    "FramedPipe": "spider.executor.pipe",
    "ExecutorConfig": "spider.executor.process",
    "ExecutorProcess": "spider.executor.process",
    "default_executor_command": "spider.executor.process",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "Execute",
    "ExecutorConfig",
    "ExecutorError",
    "ExecutorExitStatus",
    "ExecutorExited",
    "ExecutorProcess",
    "ExecutorProtocolError",
    "ExecutorStartError",
    "ExecutorUnusableError",
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
