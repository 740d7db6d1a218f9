"""Length-prefixed frames over the parent's ends of an executor's pipes.

This is the hot path of every task, so it talks to the non-blocking fds directly instead of
through Trio's ``FdStream``: a stream call costs a full scheduler pass (a checkpoint) on top of
the system call, and a round trip would pay three of them. Here a round trip is one write, one
wait for readability (the only point where the task yields) and normally one read. The fds stay
owned by the ``trio.Process`` streams, which close them.
"""

from __future__ import annotations

import errno
import os

import attrs
import trio

from spider.executor.errors import FrameTooLargeError
from spider.executor.protocol import HEADER

# One read per reply in the common case: replies are small, and a pipe holds 64 KiB anyway.
_RECEIVE_CHUNK = 64 * 1024
_HEADER_SIZE = HEADER.size


@attrs.define(eq=False)
class FramedPipe:
    """Sends whole frames on ``send_fd`` and receives frames from ``receive_fd``.

    Both fds must be non-blocking (as ``trio.lowlevel.open_process`` makes them). Not safe for
    concurrent use: one sender and one receiver at a time.
    """

    send_fd: int
    receive_fd: int
    max_frame_bytes: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _waited: bool = attrs.field(default=False, init=False)

    @classmethod
    def of_process(cls, process: trio.Process, max_frame_bytes: int) -> FramedPipe:
        """The pipe to a process started with ``stdin`` and ``stdout`` piped."""
        if not isinstance(process.stdin, trio.lowlevel.FdStream) or not isinstance(
            process.stdout, trio.lowlevel.FdStream
        ):
            raise TypeError("the process needs stdin and stdout pipes (subprocess.PIPE)")
        return cls(process.stdin.fileno(), process.stdout.fileno(), max_frame_bytes)

    async def send_frame(self, data: bytes) -> None:
        """Write an already framed message (header included); raises ``trio.BrokenResourceError``
        when the reader is gone."""
        await trio.lowlevel.checkpoint_if_cancelled()
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                try:
                    sent += os.write(self.send_fd, view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.send_fd)
                except OSError as exc:
                    raise _translate(exc) from exc

    async def receive_frame(self) -> bytes | None:
        """The body of the next frame, or ``None`` once the stream ends.

        A stream that ends inside a frame also gives ``None``: either way the peer is gone.
        A header announcing more than ``max_frame_bytes`` raises ``FrameTooLargeError``.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._waited = False
        body = await self._receive_body()
        if not self._waited:
            # The reply was already there: still give other tasks their turn, as any Trio
            # call that may block must.
            await trio.lowlevel.cancel_shielded_checkpoint()
        return body

    async def _receive_body(self) -> bytes | None:
        buffer = self._buffer
        if not buffer:
            # Fast path: the whole frame arrives in one read and is returned without going
            # through the buffer.
            data = await self._read()
            if not data:
                return None
            if len(data) >= _HEADER_SIZE:
                (size,) = HEADER.unpack_from(data)
                self._check_size(size)
                if len(data) == _HEADER_SIZE + size:
                    return data[_HEADER_SIZE:]
            buffer += data
        while len(buffer) < _HEADER_SIZE:
            if not await self._fill():
                return None
        (size,) = HEADER.unpack_from(buffer)
        self._check_size(size)
        end = _HEADER_SIZE + size
        while len(buffer) < end:
            if not await self._fill():
                return None
        body = bytes(buffer[_HEADER_SIZE:end])
        del buffer[:end]
        return body

    async def _read(self) -> bytes:
        while True:
            try:
                return os.read(self.receive_fd, _RECEIVE_CHUNK)
            except BlockingIOError:
                self._waited = True
                await trio.lowlevel.wait_readable(self.receive_fd)
            except OSError as exc:
                raise _translate(exc) from exc

    async def _fill(self) -> bool:
        data = await self._read()
        self._buffer += data
        return bool(data)

    def _check_size(self, size: int) -> None:
        if size > self.max_frame_bytes:
            raise FrameTooLargeError(size, self.max_frame_bytes)


def _translate(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("the executor pipe was already closed")
    return trio.BrokenResourceError(f"the executor pipe failed: {exc}")
