"""One client connection of ``serve``: gRPC over HTTP/2, parsed on the Trio thread.

A ``ServerConnection`` owns a ``FramedConnection`` (HTTP/2 framed by hand,
``spider.rpc._frames``) and the stream it runs on. Its
reader turns the peer's frames into ``ServerCall`` s, one per request stream, and runs each as a
task in the connection's nursery through the ``dispatch`` callback; the call task answers
through its ``ServerCall``. No other thread is involved: serving on the Trio thread costs about
half the CPU per call of grpclib behind an asyncio thread (docs/rpc.md, "Serving and calling on
the Trio thread").

gRPC's wire format (gRPC over HTTP/2, as Spider's grpc C++ speaks it): a POST to
``/package.Service/Method`` with ``content-type: application/grpc``, the request as one
length-prefixed message (a compressed flag byte and a 4-byte big-endian length), and an answer of
response headers, one length-prefixed message and trailers carrying ``grpc-status`` and
``grpc-message``; an error is answered as trailers only.
"""

from __future__ import annotations

import logging
from base64 import b64decode
from collections.abc import Awaitable, Callable, Mapping

import attrs
import trio

from spider.rpc._frames import (
    MAX_CONCURRENT_STREAMS,
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    Event,
    FramedConnection,
    HeadersReceived,
    Http2ProtocolError,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    WindowsChanged,
)
from spider.rpc._http2 import (
    READ_BYTES,
    SEND_STALL_SECONDS,
    WINDOW_BYTES,
    framed,
    grpc_timeout,
    keep_one_message,
    percent_encoded,
    send_in_windows,
)
from spider.rpc.errors import Status

LOGGER = logging.getLogger("spider.rpc")

MAX_RUNNING_CALLS = 2 * MAX_CONCURRENT_STREAMS
"""The most call tasks one connection may have running. Streams the client resets stop
counting against its stream limit at once, while their tasks end a moment later: a client that
opens and resets streams as fast as it can ("rapid reset") gets REFUSED_STREAM past this, not
a task per stream. Twice the stream limit, so that a task still finishing after its answer
never refuses a well-behaved client's next call."""

# What is not call metadata: HTTP/2 pseudo-headers and the headers gRPC reserves.
_NOT_METADATA = {b"te", b"content-type", b"user-agent"}


def _metadata(headers: list[tuple[bytes, bytes]]) -> dict[str, str | bytes]:
    """The call's metadata: ``-bin`` keys as decoded bytes, the others as str; the first value
    of a repeated key."""
    metadata: dict[str, str | bytes] = {}
    for raw_key, raw_value in headers:
        if raw_key.startswith((b":", b"grpc-")) or raw_key in _NOT_METADATA:
            continue
        key = raw_key.decode("ascii", "replace")
        if key in metadata:
            continue
        if key.endswith("-bin"):
            try:
                metadata[key] = b64decode(raw_value + b"=" * (-len(raw_value) % 4))
            except ValueError:
                continue  # not base64: not metadata anyone can use
        else:
            metadata[key] = raw_value.decode("utf-8", "replace")
    return metadata


@attrs.define(eq=False)
class ServerCall:
    """One request stream: what the client asked for, and how to answer it."""

    stream_id: int
    route: str
    metadata: Mapping[str, str | bytes]
    peer: tuple[str, int] | None
    timeout: float | None
    """Seconds from the call's arrival that its client waits (``grpc-timeout``), if it said."""
    _connection: ServerConnection
    _body: bytearray = attrs.field(factory=bytearray)
    """The bytes of the request kept: the prefix and the one message it announces."""
    _request_ended: bool = False
    _arrived: trio.Event = attrs.field(factory=trio.Event)
    """Set when the body grows or the request ends; replaced after each wake-up."""
    reset: bool = False
    """The client reset the stream, or the connection is gone: nothing more can be sent."""
    answered: bool = False
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    """The call task's scope: cancelled when the client resets the stream."""

    def _feed(self, data: bytes, limit: int) -> None:
        keep_one_message(self._body, data, limit)
        self._wake()

    def _end_request(self) -> None:
        self._request_ended = True
        self._wake()

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()

    async def receive(self, size: int) -> bytes:
        """The request's first ``size`` bytes, or fewer if the request ended before them."""
        while len(self._body) < size and not self._request_ended and not self.reset:
            await self._arrived.wait()
        return bytes(self._body[:size])

    async def send_reply(self, message: bytes) -> None:
        """Answer OK with ``message`` (serialised): headers, the prefixed message, trailers.

        A cancelled call answers nothing; one cancelled while its message waits for the
        client's flow-control window resets the stream, so the client never takes a partial
        answer for a whole one. Once the whole answer is queued it is written out, shielded
        (bounded by ``SEND_STALL_SECONDS``), so that returning means it left the server.
        Raises ``trio.BrokenResourceError`` if the stream or the connection is gone.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self.answered = True
        connection = self._connection
        protocol = connection.protocol
        try:
            protocol.send_headers(self.stream_id, _REPLY_HEADERS)
            await send_in_windows(
                protocol,
                self.stream_id,
                framed(message),
                end_stream=False,
                flush=connection.flush,
                window_opened=connection.window_opened,
            )
            protocol.send_headers(self.stream_id, _OK_TRAILERS, end_stream=True)
            if not self._request_ended:
                # Answered before the request ended: tell the client to stop sending it, and
                # free the stream (as ``send_status_nowait`` does).
                protocol.reset_stream(self.stream_id, ErrorCode.NO_ERROR)
        except StreamClosedError as exc:
            self.reset = True
            raise trio.BrokenResourceError("the client reset the call's stream") from exc
        except BaseException:
            protocol.reset_stream(self.stream_id, ErrorCode.CANCEL)
            raise
        with trio.CancelScope(shield=True):
            await connection.flush()

    async def send_status(self, status: Status, message: str) -> None:
        """Answer ``status`` with ``message`` and no reply, as trailers only."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self.send_status_nowait(status, message)
        with trio.CancelScope(shield=True):
            await self._connection.flush()

    def send_status_nowait(self, status: Status, message: str) -> None:
        """Queue a trailers-only answer (sent with the connection's next flush)."""
        headers = [*_REPLY_HEADERS, (b"grpc-status", b"%d" % status.value)]
        if message:
            headers.append((b"grpc-message", percent_encoded(message)))
        self.answered = True
        protocol = self._connection.protocol
        try:
            protocol.send_headers(self.stream_id, headers, end_stream=True)
            if not self._request_ended:
                # Tell the client to stop sending a request that will not be read.
                protocol.reset_stream(self.stream_id, ErrorCode.NO_ERROR)
        except StreamClosedError:
            self.reset = True

    async def flush(self) -> None:
        """Write what is queued on the call's connection (``send_status_nowait``'s answer)."""
        await self._connection.flush()

    def _check_open(self) -> None:
        if self.reset:
            raise trio.BrokenResourceError("the client reset the call's stream")


_REPLY_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_OK_TRAILERS = [(b"grpc-status", b"0")]

Dispatch = Callable[[ServerCall], Awaitable[None]]


@attrs.define(eq=False)
class ServerConnection:
    """One client's HTTP/2 connection; ``run`` serves it until the client or ``serve`` ends it."""

    stream: trio.abc.Stream
    peer: tuple[str, int] | None
    dispatch: Dispatch
    """Runs one call, in a task of the connection's nursery, and answers it."""
    max_request_bytes: int
    close_seconds: float
    """How long closing waits to write the connection's GOAWAY to a client that does not read."""
    protocol: FramedConnection = attrs.field(
        factory=lambda: FramedConnection(client_side=False, window_bytes=WINDOW_BYTES)
    )
    _calls: dict[int, ServerCall] = attrs.field(factory=dict)
    _running: int = 0
    """Call tasks started and not yet ended (their streams may be gone)."""
    _sending: trio.Lock = attrs.field(factory=trio.Lock)
    _window_opened: trio.Event = attrs.field(factory=trio.Event)

    async def run(self) -> None:
        """Serve until the client closes the connection or breaks the protocol, or until
        cancelled; then cancel the calls still running and close the connection."""
        try:
            async with trio.open_nursery() as calls:
                await self._read(calls)
                # The client is gone: no answer can reach it.
                calls.cancel_scope.cancel()
        finally:
            for call in self._calls.values():
                call.reset = True
            with trio.CancelScope(shield=True):
                await self._close()

    async def _read(self, calls: trio.Nursery) -> None:
        try:
            await self.flush()  # the server's preface
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        while True:
            try:
                data = await self.stream.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            try:
                events = self.protocol.receive_data(data)
            except Http2ProtocolError as exc:
                # A GOAWAY naming the error is queued; the connection ends here.
                LOGGER.debug(
                    "closing a connection from %s: HTTP/2 protocol error: %s",
                    self.peer,
                    exc,
                    extra={"rpc_peer": self.peer},
                )
                return
            for event in events:
                self._handle(event, calls)
            try:
                await self.flush()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    def _handle(self, event: Event, calls: trio.Nursery) -> None:
        if isinstance(event, DataReceived):
            call = self._calls.get(event.stream_id)
            if call is not None:
                call._feed(event.data, self.max_request_bytes)
            self.protocol.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, HeadersReceived):
            if event.opened:  # not the client's trailers
                self._start(event, calls)
        elif isinstance(event, StreamEnded):
            call = self._calls.get(event.stream_id)
            if call is not None:
                call._end_request()
        elif isinstance(event, StreamReset):
            call = self._calls.pop(event.stream_id, None)
            if call is not None:
                call.reset = True
                call.scope.cancel()
        elif isinstance(event, WindowsChanged):
            self._window_opened.set()
            self._window_opened = trio.Event()
        elif isinstance(event, ConnectionTerminated):
            pass  # the client opens no more calls; those it has still get their answers

    def _start(self, event: HeadersReceived, calls: trio.Nursery) -> None:
        if self._running >= MAX_RUNNING_CALLS:
            self.protocol.reset_stream(event.stream_id, ErrorCode.REFUSED_STREAM)
            return
        headers = event.headers
        path = b""
        timeout: float | None = None
        for key, value in headers:
            if key == b":path":
                path = value
            elif key == b"grpc-timeout":
                timeout = grpc_timeout(value)
        call = ServerCall(
            event.stream_id,
            path.decode("utf-8", "replace"),
            _metadata(headers),
            self.peer,
            timeout,
            self,
        )
        self._calls[event.stream_id] = call
        self._running += 1
        calls.start_soon(self._run_call, call)

    async def _run_call(self, call: ServerCall) -> None:
        # Whatever one call does, it must not end its connection's other calls, or ``serve``.
        try:
            await self.dispatch(call)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection is gone: its reader ends it
        except Exception:
            LOGGER.exception(
                "a call of %s failed outside its handler",
                call.route,
                extra={"rpc_method": call.route, "rpc_peer": self.peer},
            )
        finally:
            self._calls.pop(call.stream_id, None)
            self._running -= 1

    async def window_opened(self) -> None:
        """Wait until the client grants more flow-control window (or changes its settings)."""
        await self._window_opened.wait()

    async def flush(self) -> None:
        """Write what the protocol has queued to the socket.

        The write itself is shielded: a call cancelled halfway through it (its client reset it,
        its deadline passed) would leave half a frame on the wire and break every other call of
        the connection. A client that reads nothing for ``SEND_STALL_SECONDS`` loses the
        connection instead (``trio.BrokenResourceError``).
        """
        async with self._sending:
            pending = self.protocol.data_to_send()
            if not pending:
                return
            with trio.CancelScope(shield=True) as sending:
                sending.deadline = trio.current_time() + SEND_STALL_SECONDS
                await self.stream.send_all(pending)
            if sending.cancelled_caught:
                LOGGER.warning(
                    "closing the connection from %s: it read nothing for %g s",
                    self.peer,
                    SEND_STALL_SECONDS,
                    extra={"rpc_peer": self.peer, "send_stall_s": SEND_STALL_SECONDS},
                )
                await trio.aclose_forcefully(self.stream)
                raise trio.BrokenResourceError(
                    f"the client read nothing for {SEND_STALL_SECONDS:g} s; connection closed"
                )

    async def _close(self) -> None:
        # Every call task and the reader have ended: nothing else writes now.
        try:
            self.protocol.close_connection()
            pending = self.protocol.data_to_send()
            with trio.move_on_after(self.close_seconds):
                await self.stream.send_all(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await trio.aclose_forcefully(self.stream)
