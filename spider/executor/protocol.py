"""The executor protocol: length-prefixed msgpack frames between the EM and its executors.

A frame is ``[length: u32 BE][body]``; the body is one msgpack array whose first element is a
message tag, followed by the message's fields in declaration order. ``docs/executor-protocol.md``
is the reference; this module is its only implementation, shared by both sides.

Bodies are decoded strictly: exactly the fields of the tagged message, each of its type, in the
shortest msgpack encoding (as ormsgpack writes it) and nothing after it. Any defect raises
``ExecutorProtocolError``, never another exception.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias, cast

import attrs
import ormsgpack

from spider.executor.errors import ExecutorProtocolError, FrameTooLargeError

PROTOCOL_VERSION: Final = 1
"""Sent in ``Ready``; the parent refuses an executor that speaks another version."""

DEFAULT_MAX_FRAME_BYTES: Final = 8 * 1024 * 1024
"""The default limit on a frame body, in bytes (upstream's 8 MiB)."""

MIN_MAX_FRAME_BYTES: Final = 1024
"""The smallest frame limit that still fits every fixed-size message and a short failure."""

MAX_MAX_FRAME_BYTES: Final = 0xFFFF_FFFF
"""The largest frame limit the u32 length header can express."""

HEADER: Final = struct.Struct(">I")
"""The frame header: the body length as a big-endian u32."""

ENV_PACKAGE_DIR: Final = "SPIDER_TDL_PACKAGE_DIR"
"""Environment variable naming the directories the executor loads TDL packages from, separated
by ``os.pathsep`` and searched in order (required); one directory is just its path."""

ENV_MAX_FRAME_BYTES: Final = "SPIDER_EXECUTOR_MAX_FRAME_BYTES"
"""Environment variable with the frame limit in bytes (optional, default 8 MiB)."""

ENV_LOG_LEVEL: Final = "SPIDER_LOG_LEVEL"
"""Environment variable with the executor's log level name (optional, default INFO)."""

_U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF

TAG_EXECUTE: Final = 1
TAG_SHUTDOWN: Final = 2
TAG_READY: Final = 16
TAG_SUCCESS: Final = 17
TAG_FAILURE: Final = 18
TAG_TOO_LARGE: Final = 19


class FrameKind(enum.Enum):
    """Which frame of an exchange was over the limit."""

    REQUEST = "request"
    RESPONSE = "response"


@attrs.frozen
class Execute:
    """Run ``task_func`` of ``package`` with a msgpack ``TaskContext`` and an input wire frame."""

    package: str
    task_func: str
    raw_ctx: bytes
    raw_inputs: bytes


@attrs.frozen
class Shutdown:
    """Ask the executor to exit with status 0."""


@attrs.frozen
class Ready:
    """The executor's first frame: it is up, and speaks this protocol version."""

    protocol_version: int
    pid: int
    max_frame_bytes: int


@attrs.frozen
class Success:
    """The task ran; ``outputs`` is its output wire frame."""

    outputs: bytes
    elapsed_us: int


@attrs.frozen
class Failure:
    """The task did not run to completion.

    ``kind`` is the ``TdlError.kind`` (``"execution"``, ``"task_not_found"``,
    ``"package_init"``, ...) or ``"internal"`` for an executor bug. ``exc_type`` and
    ``traceback`` describe the task's own exception when there is one.
    """

    kind: str
    message: str
    exc_type: str | None
    traceback: str | None
    elapsed_us: int


@attrs.frozen
class TooLarge:
    """A request, or the response the task produced, was over the frame limit."""

    frame: FrameKind
    size: int
    limit: int
    elapsed_us: int

    @property
    def message(self) -> str:
        """What happened, with the size and the limit, and what to do about it."""
        if self.frame is FrameKind.REQUEST:
            what, fix = "the request frame (task inputs and context)", "send smaller inputs"
        else:
            what, fix = "the response frame (task outputs)", "return smaller outputs"
        return (
            f"{what} is {self.size} bytes, over the executor frame limit of {self.limit} "
            f"bytes: {fix} or raise the frame limit"
        )


Request: TypeAlias = Execute | Shutdown
"""A message from the parent to the executor."""

TaskOutcome: TypeAlias = Success | Failure | TooLarge
"""The executor's answer to one ``Execute``."""

Response: TypeAlias = Ready | TaskOutcome
"""A message from the executor to the parent."""


def encode_request(request: Request) -> bytes:
    """The msgpack body of ``request`` (without the frame header)."""
    if isinstance(request, Execute):
        return ormsgpack.packb(
            [TAG_EXECUTE, request.package, request.task_func, request.raw_ctx, request.raw_inputs]
        )
    return ormsgpack.packb([TAG_SHUTDOWN])


def encode_response(response: Response) -> bytes:
    """The msgpack body of ``response`` (without the frame header)."""
    if isinstance(response, Success):
        return ormsgpack.packb([TAG_SUCCESS, response.outputs, response.elapsed_us])
    if isinstance(response, Failure):
        return ormsgpack.packb(
            [
                TAG_FAILURE,
                response.kind,
                response.message,
                response.exc_type,
                response.traceback,
                response.elapsed_us,
            ]
        )
    if isinstance(response, TooLarge):
        return ormsgpack.packb(
            [
                TAG_TOO_LARGE,
                response.frame.value,
                response.size,
                response.limit,
                response.elapsed_us,
            ]
        )
    return ormsgpack.packb(
        [TAG_READY, response.protocol_version, response.pid, response.max_frame_bytes]
    )


def frame(body: bytes, max_frame_bytes: int) -> bytes:
    """``body`` with its length header, in one buffer so it goes out in one write."""
    if len(body) > max_frame_bytes:
        raise FrameTooLargeError(len(body), max_frame_bytes)
    return HEADER.pack(len(body)) + body


def decode_request(body: bytes | bytearray | memoryview) -> Request:
    """Parse a request body; a defect raises ``ExecutorProtocolError``."""
    items = _unpack(body, "request")
    # Fast path for the one message of the hot path; anything else gets the general checks
    # (which also explain what is wrong).
    if type(items) is list and len(items) == 5:
        tag, package, task_func, raw_ctx, raw_inputs = items
        if (
            type(tag) is int
            and tag == TAG_EXECUTE
            and type(package) is str
            and type(task_func) is str
            and type(raw_ctx) is bytes
            and type(raw_inputs) is bytes
            and len(body)
            == 2 + _size(package) + _size(task_func) + _size(raw_ctx) + _size(raw_inputs)
        ):
            return Execute(package, task_func, raw_ctx, raw_inputs)
    return cast(Request, _decode(items, len(body), _REQUESTS, "request"))


def decode_response(body: bytes | bytearray | memoryview) -> Response:
    """Parse a response body; a defect raises ``ExecutorProtocolError``."""
    items = _unpack(body, "response")
    if type(items) is list and len(items) == 3:
        tag, outputs, elapsed_us = items
        if (
            type(tag) is int
            and tag == TAG_SUCCESS
            and type(outputs) is bytes
            and type(elapsed_us) is int
            and 0 <= elapsed_us <= _U64_MAX
            and len(body) == 2 + _size(outputs) + _int_size(elapsed_us)
        ):
            return Success(outputs, elapsed_us)
    return cast(Response, _decode(items, len(body), _RESPONSES, "response"))


def validate_max_frame_bytes(value: int) -> int:
    """``value`` if it is a usable frame limit, else ``ValueError`` naming the range."""
    if not MIN_MAX_FRAME_BYTES <= value <= MAX_MAX_FRAME_BYTES:
        raise ValueError(
            f"the executor frame limit must be between {MIN_MAX_FRAME_BYTES} and "
            f"{MAX_MAX_FRAME_BYTES} bytes, got {value}"
        )
    return value


def validate_package_dir(
    value: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[Path, ...]:
    """The directories ``package_dir`` names, in order: one path, or several.

    ``ValueError`` if there is none, an entry is empty or not a path, or one holds
    ``os.pathsep``, which could not be told apart from the separator in ``SPIDER_TDL_PACKAGE_DIR``.
    """
    if isinstance(value, str | os.PathLike):
        entries: list[object] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        entries = list(value)
    else:
        raise ValueError(f"package_dir must be a directory or a list of directories, got {value!r}")
    if not entries:
        raise ValueError("package_dir must name at least one directory")
    directories = []
    for entry in entries:
        text = os.fspath(entry) if isinstance(entry, str | os.PathLike) else None
        if not isinstance(text, str) or not text:
            raise ValueError(f"package_dir entries must be directory paths, got {entry!r}")
        if os.pathsep in text:
            raise ValueError(
                f"package_dir entry {text!r} contains {os.pathsep!r}, which separates "
                f"directories in {ENV_PACKAGE_DIR}: give each directory as an entry of its own"
            )
        directories.append(Path(text))
    return tuple(directories)


def encode_package_dir(package_dir: Iterable[Path]) -> str:
    """``SPIDER_TDL_PACKAGE_DIR``'s value: the directories joined by ``os.pathsep`` (a single
    directory is its path alone, which is all upstream's executor reads)."""
    return os.pathsep.join(str(directory) for directory in package_dir)


def decode_package_dir(text: str) -> tuple[Path, ...]:
    """The directories of an ``os.pathsep``-separated list, in order.

    ``ValueError`` for an empty list or an empty entry: unlike ``PYTHONPATH``, where an empty
    entry means the current directory, here it is a mistake.
    """
    if not text:
        raise ValueError(
            "it is empty: give one directory, or several separated by " + repr(os.pathsep)
        )
    entries = text.split(os.pathsep)
    if not all(entries):
        raise ValueError(
            f"{text!r} has an empty entry: directories are separated by one {os.pathsep!r}, "
            "with none at either end"
        )
    return tuple(Path(entry) for entry in entries)


# A field checker returns the field's Python value or raises ``_FieldError``; ``_size`` below
# then recomputes the shortest encoding to detect trailing bytes.
class _FieldError(Exception):
    pass


def _uint(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX:
        return value
    raise _FieldError(f"expected an unsigned integer, got {_describe(value)}")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _FieldError(f"expected a string, got {_describe(value)}")


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    raise _FieldError(f"expected binary data, got {_describe(value)}")


def _frame_kind(value: Any) -> FrameKind:
    try:
        return FrameKind(_str(value))
    except ValueError:
        raise _FieldError(f"expected 'request' or 'response', got {value!r}") from None


_Schema: TypeAlias = tuple[Callable[..., Any], tuple[Callable[[Any], Any], ...]]

_REQUESTS: Final[dict[int, _Schema]] = {
    TAG_EXECUTE: (Execute, (_str, _str, _bytes, _bytes)),
    TAG_SHUTDOWN: (Shutdown, ()),
}
_RESPONSES: Final[dict[int, _Schema]] = {
    TAG_READY: (Ready, (_uint, _uint, _uint)),
    TAG_SUCCESS: (Success, (_bytes, _uint)),
    TAG_FAILURE: (Failure, (_str, _str, _optional_str, _optional_str, _uint)),
    TAG_TOO_LARGE: (TooLarge, (_frame_kind, _uint, _uint, _uint)),
}


def _unpack(body: bytes | bytearray | memoryview, what: str) -> Any:
    try:
        return ormsgpack.unpackb(body)
    except (ValueError, TypeError) as exc:
        raise ExecutorProtocolError(f"invalid {what} frame: not msgpack ({exc})") from exc


def _decode(items: Any, body_size: int, schemas: dict[int, _Schema], what: str) -> Any:
    if not isinstance(items, list) or not items:
        raise ExecutorProtocolError(
            f"invalid {what} frame: expected a non-empty msgpack array, got {_describe(items)}"
        )
    tag = items[0]
    schema = schemas.get(tag) if isinstance(tag, int) and not isinstance(tag, bool) else None
    if schema is None:
        raise ExecutorProtocolError(f"invalid {what} frame: unknown message tag {tag!r}")
    constructor, checkers = schema
    name = getattr(constructor, "__name__", "message")
    if len(items) != len(checkers) + 1:
        raise ExecutorProtocolError(
            f"invalid {what} frame: {name} has {len(checkers)} fields, got {len(items) - 1}"
        )
    try:
        fields = [check(item) for check, item in zip(checkers, items[1:], strict=True)]
    except _FieldError as exc:
        raise ExecutorProtocolError(f"invalid {what} frame: {name}: {exc}") from None
    expected_size = _size(items)
    if expected_size != body_size:
        raise ExecutorProtocolError(
            f"invalid {what} frame: {name} encodes to {expected_size} bytes but the frame "
            f"body has {body_size} (trailing bytes or a non-canonical encoding)"
        )
    return constructor(*fields)


def _size(value: object) -> int:
    """The length of the shortest msgpack encoding of an already validated value."""
    if value is None:
        return 1
    if isinstance(value, int):
        return _int_size(value)
    if isinstance(value, str):
        length = len(value) if value.isascii() else len(value.encode())
        return length + (1 if length < 32 else _length_header(length))
    if isinstance(value, bytes):
        return len(value) + _length_header(len(value))
    assert isinstance(value, list)  # the decoder only calls this on validated arrays
    items = sum(_size(item) for item in value)
    return items + (1 if len(value) < 16 else 3 if len(value) < 0x1_0000 else 5)


def _int_size(value: int) -> int:
    if value < 0x80:
        return 1
    if value < 0x100:
        return 2
    if value < 0x1_0000:
        return 3
    return 5 if value < 0x1_0000_0000 else 9


def _length_header(length: int) -> int:
    """The header size of a str8/bin8-style length: 1 tag byte plus 1, 2 or 4 length bytes."""
    return 2 if length < 0x100 else 3 if length < 0x1_0000 else 5


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} elements"
    return f"a {type(value).__name__}"
