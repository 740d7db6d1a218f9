"""The executor's end of the pipes: frames read and written with raw ``os`` calls on fds.

No Python file objects sit in between: a request is normally one ``read`` and a reply one
``writev``, and large bodies are read straight into their final buffer.
"""

from __future__ import annotations

import os

import attrs

from spider.executor.errors import ExecutorProtocolError
from spider.executor.protocol import HEADER

_HEADER_SIZE = HEADER.size
_READ_CHUNK = 64 * 1024


@attrs.frozen
class OversizedFrame:
    """A request frame over the limit; its body was read and discarded."""

    size: int


@attrs.define(eq=False)
class FrameChannel:
    """Reads request frames from ``request_fd`` and writes replies to ``reply_fd``."""

    request_fd: int
    reply_fd: int
    max_frame_bytes: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)

    def read_frame(self) -> bytes | bytearray | memoryview | OversizedFrame | None:
        """The next request body; ``None`` at end-of-file between frames.

        End-of-file inside a frame raises ``ExecutorProtocolError``; a frame over the limit is
        consumed and reported as ``OversizedFrame``, so the stream stays in sync.
        """
        buffer = self._buffer
        if not buffer:
            data = os.read(self.request_fd, _READ_CHUNK)
            if not data:
                return None
            if len(data) >= _HEADER_SIZE:
                (size,) = HEADER.unpack_from(data)
                if size <= self.max_frame_bytes and len(data) == _HEADER_SIZE + size:
                    # The common case: exactly one frame in one read, handed over uncopied.
                    return memoryview(data)[_HEADER_SIZE:]
            buffer += data
        while len(buffer) < _HEADER_SIZE:
            self._fill(f"the header ({len(buffer)} of {_HEADER_SIZE} bytes read)")
        (size,) = HEADER.unpack_from(buffer)
        if size > self.max_frame_bytes:
            self._discard(size)
            return OversizedFrame(size)
        end = _HEADER_SIZE + size
        if len(buffer) >= end:
            body = bytes(buffer[_HEADER_SIZE:end])
            del buffer[:end]
            return body
        return self._read_body(size)

    def write_frame(self, body: bytes) -> None:
        """Write ``[len][body]`` with one ``writev`` (looping only on a partial write)."""
        header = HEADER.pack(len(body))
        written = os.writev(self.reply_fd, (header, body))
        if written == _HEADER_SIZE + len(body):
            return
        remaining = memoryview(header + body)[written:]
        while remaining:
            remaining = remaining[os.write(self.reply_fd, remaining) :]

    def _read_body(self, size: int) -> bytearray:
        """Read the rest of a body whose start is buffered straight into its own buffer."""
        body = bytearray(size)
        filled = len(self._buffer) - _HEADER_SIZE
        body[:filled] = self._buffer[_HEADER_SIZE:]
        self._buffer.clear()
        with memoryview(body) as view:
            while filled < size:
                count = os.readv(self.request_fd, [view[filled:]])
                if count == 0:
                    raise _truncated(f"the body ({filled} of {size} bytes read)")
                filled += count
        return body

    def _discard(self, size: int) -> None:
        buffered = len(self._buffer) - _HEADER_SIZE
        if buffered >= size:
            del self._buffer[: _HEADER_SIZE + size]
            return
        self._buffer.clear()
        remaining = size - buffered
        while remaining:
            data = os.read(self.request_fd, min(remaining, _READ_CHUNK))
            if not data:
                raise _truncated(f"an oversized body ({size - remaining} of {size} bytes read)")
            remaining -= len(data)

    def _fill(self, what: str) -> None:
        data = os.read(self.request_fd, _READ_CHUNK)
        if not data:
            raise _truncated(what)
        self._buffer += data


def _truncated(what: str) -> ExecutorProtocolError:
    return ExecutorProtocolError(f"stdin ended in the middle of a frame, inside {what}")
