"""One HTTP/2 connection of a ``Channel``: gRPC calls made and parsed on the Trio thread.

A ``ClientConnection`` owns a ``FramedConnection`` (HTTP/2 framed by hand,
``spider.rpc._frames``) and the stream it runs on. ``run``
(a task in the channel's nursery) reads the server's frames and writes what is queued; each
call sends its request from the caller's own task and waits for its ``Answer``. No other
thread is involved (docs/rpc.md, "Serving and calling on the Trio thread", "A hand-written
framing").
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import unquote_to_bytes

import attrs
import trio

from spider.rpc._frames import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    Event,
    FramedConnection,
    HeadersReceived,
    Http2ProtocolError,
    NoStreamIdsLeft,
    StreamEnded,
    StreamReset,
    WindowsChanged,
)
from spider.rpc._http2 import (
    MESSAGE_PREFIX_BYTES,
    READ_BYTES,
    SEND_STALL_SECONDS,
    WINDOW_BYTES,
    framed,
    grpc_timeout_header,
    keep_one_message,
    send_in_windows,
)
from spider.rpc.errors import Status

LOGGER = logging.getLogger("spider.rpc")

QUEUED_BYTES_LIMIT = 1 << 20
"""The most bytes the reader lets pile up for the writer (answers to the server's PINGs and
SETTINGS, window updates) before it waits for them to be written: a server that sends without
reading cannot grow the client's memory."""

CLOSE_SECONDS = 0.5
"""How long closing waits to write what is still queued (a GOAWAY naming an error)."""

USER_AGENT = b"spider-py-rpc"


@attrs.define(eq=False)
class Answer:
    """What the server answered to one call, as it arrives."""

    http_status: bytes | None = None
    grpc_status: int | None = None
    grpc_message: str = ""
    body: bytearray = attrs.field(factory=bytearray)
    reset_code: int | None = None
    """The HTTP/2 error code of a reset before the call ended."""
    failure: str | None = None
    """What went wrong with the connection, if it failed before the call ended."""
    done: trio.Event = attrs.field(factory=trio.Event)
    overflowed: bool = False
    """The body went on past the one message its prefix announced (not kept): malformed."""

    def _feed(self, data: bytes) -> None:
        # No size limit of its own: any length a prefix can announce is kept.
        if keep_one_message(self.body, data, limit=2**32):
            self.overflowed = True

    def _read_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        for key, value in headers:
            if key == b":status":
                self.http_status = value
            elif key == b"grpc-status":
                try:
                    self.grpc_status = int(value)
                except ValueError:
                    self.grpc_status = Status.UNKNOWN.value
            elif key == b"grpc-message":
                self.grpc_message = unquote_to_bytes(value).decode("utf-8", "replace")

    def _fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.failure = reason
            self.done.set()


@attrs.define(eq=False)
class ClientConnection:
    """One connection to a server; ``run`` keeps it going, ``call`` makes calls on it."""

    stream: trio.abc.Stream
    authority: bytes
    scheme: bytes
    protocol: FramedConnection = attrs.field(
        factory=lambda: FramedConnection(client_side=True, window_bytes=WINDOW_BYTES)
    )
    accepting: bool = True
    """False once the connection is lost, the server sent GOAWAY or stream ids ran out: the
    channel then makes a new connection for new calls."""
    _answers: dict[int, Answer] = attrs.field(factory=dict)
    _output: trio.Event = attrs.field(factory=trio.Event)
    _capacity: trio.Event = attrs.field(factory=trio.Event)
    """Set (and replaced) when flow-control windows grow or a stream ends."""
    _written: trio.Event = attrs.field(factory=trio.Event)
    """Set (and replaced) after each write."""
    _lost: bool = False
    """The connection is gone: nothing more can be sent or received on it."""
    _mid_write: bool = False
    """A write is under way (if it is cancelled, part of a frame may be on the wire)."""
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    """``run``'s scope: cancelled once a connection that no longer accepts calls is idle."""

    def __attrs_post_init__(self) -> None:
        self._output.set()  # the preface

    async def run(self) -> None:
        """Read and write until the connection ends or the channel closes; then fail the calls
        still waiting (``UNAVAILABLE``) and close the stream."""
        reason = "the connection was closed"
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    try:
                        reason = await self._read()
                    except Exception as exc:
                        # One connection's failure must not end the channel's block.
                        LOGGER.exception("a connection of a channel failed")
                        reason = f"the connection failed: {exc!r}"
                    nursery.cancel_scope.cancel()
        finally:
            # Not if the writer found the stream broken (and closed it), nor after a write cut
            # off halfway: what followed would not parse.
            writable = not self._lost and not self._mid_write
            self.accepting = False
            self._lost = True
            for answer in self._answers.values():
                answer._fail(reason)
            self._wake_capacity()
            await self._close(writable)

    async def _close(self, writable: bool) -> None:
        # Write what is still queued (the GOAWAY of a protocol error), briefly, then close.
        pending = self.protocol.data_to_send()
        if writable and pending:
            with (
                trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_SECONDS),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await self.stream.send_all(pending)
        await trio.aclose_forcefully(self.stream)

    async def call(
        self,
        path: bytes,
        message: bytes,
        deadline_seconds: float,
        metadata: list[tuple[bytes, bytes]],
        *,
        keep_answer: bool = False,
    ) -> Answer:
        """Send one unary call and wait for its answer; cancelling resets the stream.

        With ``keep_answer``, an answer that had arrived whole when the cancellation came is
        returned instead (the caller's next checkpoint raises the cancellation).
        """
        protocol = self.protocol
        while (
            self.accepting
            and protocol.open_outbound_streams >= protocol.peer_max_concurrent_streams
        ):
            await self._capacity.wait()
        if not self.accepting:
            # Lost, or retired while this call waited for a free stream: the channel's retry
            # policy takes an UNAVAILABLE answer to a new connection.
            answer = Answer()
            answer._fail("the connection stopped taking calls before this one was sent")
            return answer
        try:
            stream_id = protocol.get_next_available_stream_id()
        except NoStreamIdsLeft:
            self.accepting = False
            if not self._answers:
                self._scope.cancel()
            answer = Answer()
            answer._fail("the connection has used up its stream ids")
            return answer
        answer = self._answers[stream_id] = Answer()
        try:
            protocol.send_headers(
                stream_id,
                [
                    (b":method", b"POST"),
                    (b":scheme", self.scheme),
                    (b":path", path),
                    (b":authority", self.authority),
                    (b"te", b"trailers"),
                    (b"content-type", b"application/grpc"),
                    (b"user-agent", USER_AGENT),
                    (b"grpc-timeout", grpc_timeout_header(deadline_seconds)),
                    *metadata,
                ],
            )
            await send_in_windows(
                protocol,
                stream_id,
                framed(message),
                end_stream=True,
                flush=self._flush,
                window_opened=self._wait_for_window,
                abandoned=answer.done.is_set,
            )
            self._wake_writer()
            await answer.done.wait()
        except trio.BrokenResourceError as exc:
            answer._fail(str(exc))  # lost while the request waited for the server's window
        except trio.Cancelled:
            if keep_answer and answer.done.is_set():
                return answer
            raise
        finally:
            del self._answers[stream_id]
            # A stream still open here was cancelled, failed, or answered before the whole
            # request was sent (the server refused it early): reset it, so that the server
            # stops work on it and it stops counting against the server's stream limit.
            if protocol.reset_stream(stream_id, ErrorCode.CANCEL):
                self._wake_writer()
                self._wake_capacity()  # a stream is free for a call waiting for one
            self._close_if_retired()
        return answer

    def _close_if_retired(self) -> None:
        if not self.accepting and not self._answers:
            self._scope.cancel()  # retired and idle: close it

    async def _flush(self) -> None:
        # The writer task writes; a call only wakes it.
        self._wake_writer()

    def _wake_writer(self) -> None:
        self._output.set()

    def _wake_capacity(self) -> None:
        self._capacity.set()
        self._capacity = trio.Event()

    async def _wait_for_window(self) -> None:
        # After a GOAWAY the streams already open are still answered, so their requests go on
        # being sent; only a lost connection ends them.
        if self._lost:
            raise trio.BrokenResourceError("the connection was lost while sending the request")
        await self._capacity.wait()

    async def _write(self) -> None:
        try:
            while True:
                await self._output.wait()
                self._output = trio.Event()
                pending = self.protocol.data_to_send()
                if not pending:
                    continue
                with trio.move_on_after(SEND_STALL_SECONDS) as stall:
                    self._mid_write = True
                    await self.stream.send_all(pending)
                    self._mid_write = False
                if stall.cancelled_caught:
                    LOGGER.warning(
                        "closing a connection: the server read nothing for %g s",
                        SEND_STALL_SECONDS,
                        extra={"send_stall_s": SEND_STALL_SECONDS},
                    )
                    break
                self._written.set()
                self._written = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.accepting = False
        self._lost = True
        self._written.set()
        # Wake the reader, which then reports the connection as lost.
        await trio.aclose_forcefully(self.stream)

    async def _read(self) -> str:
        """Read until the connection ends; returns why it ended."""
        while True:
            try:
                data = await self.stream.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                return f"the connection failed: {exc.__cause__ or exc}"
            if not data:
                return "the server closed the connection"
            try:
                events = self.protocol.receive_data(data)
            except Http2ProtocolError as exc:
                self._wake_writer()  # a GOAWAY naming the error is queued
                return f"HTTP/2 protocol error from the server: {exc}"
            for event in events:
                self._handle(event)
            if not self.accepting and not self._answers:
                return "the server is going away (GOAWAY)"
            self._wake_writer()
            while self.protocol.queued_bytes > QUEUED_BYTES_LIMIT and not self._lost:
                await self._written.wait()

    def _handle(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            answer = self._answers.get(event.stream_id)
            if answer is not None:
                answer._feed(event.data)
            self.protocol.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, HeadersReceived):  # the response's headers or trailers
            answer = self._answers.get(event.stream_id)
            if answer is not None:
                answer._read_headers(event.headers)
        elif isinstance(event, StreamEnded):
            answer = self._answers.get(event.stream_id)
            if answer is not None:
                answer.done.set()
            self._wake_capacity()
        elif isinstance(event, StreamReset):
            answer = self._answers.get(event.stream_id)
            if answer is not None and not answer.done.is_set():
                answer.reset_code = event.error_code
                answer.done.set()
            self._wake_capacity()
        elif isinstance(event, ConnectionTerminated):
            self.accepting = False
            for stream_id, answer in self._answers.items():
                if stream_id > event.last_stream_id:
                    # Never processed by the server: safe to send again.
                    answer._fail("the server refused the call: it is going away (GOAWAY)")
            self._wake_capacity()
        elif isinstance(event, WindowsChanged):
            self._wake_capacity()


def message_of(answer: Answer) -> bytes | None:
    """The one message of an OK answer's body, or ``None`` if the body is not one whole
    uncompressed message."""
    body = answer.body
    if answer.overflowed or len(body) < MESSAGE_PREFIX_BYTES or body[0]:
        return None
    length = int.from_bytes(body[1:MESSAGE_PREFIX_BYTES], "big")
    if len(body) != MESSAGE_PREFIX_BYTES + length:
        return None
    return bytes(body[MESSAGE_PREFIX_BYTES:])
