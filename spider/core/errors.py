"""The errors of ``spider.core``: one base class, flat subclasses, messages that say what to do."""

from __future__ import annotations

from typing import Final

EM_DECLARED_DEAD: Final = "was declared dead"
"""In storage's FAILED_PRECONDITION message to an EM it declared dead. Upstream answers a stale
task registration with the same code (its message starts ``cache stale``), so this phrase is how
an EM tells "drop this assignment" from "this EM is fenced; hand the assignment back"."""


class SpiderError(Exception):
    """Base class of every error Spider-py raises on purpose."""


class FatalError(SpiderError):
    """A condition the service cannot go on after: ``supervise`` does not restart a loop that
    raises one; it propagates and ends the service, whose entry point reports the message."""


class CodecError(SpiderError, ValueError):
    """Bytes that do not decode as the format they claim to be."""


class WireFormatError(CodecError):
    """A malformed wire frame (``[count u32 LE]([len u32 LE][payload])*``)."""


class TaskOutputsFormatError(CodecError):
    """A malformed ``SerializedTaskOutputs`` buffer (option byte, then a wire frame)."""


class CompressionError(CodecError):
    """A zstd stream that does not decompress, or decompresses beyond the allowed size."""


class TaskContextError(CodecError):
    """A ``TaskContext`` that does not decode, or violates its invariants."""


class TaskGraphError(CodecError):
    """A task graph that is malformed or breaks one of Spider's graph rules."""


class SessionRegressionError(SpiderError):
    """A storage session id went backwards: an invariant violation, fatal to the process."""
