"""HTTP/2 as gRPC's calls use it, framed by hand; header blocks compressed by ``hpack``.

``h2``'s general state machine cost about half of a unary call's server CPU; cutting and
building the few frames gRPC uses by hand costs 0.43-0.53x as much per call (docs/rpc.md, "A
hand-written framing"). ``FramedConnection`` keeps what HTTP/2 requires of an endpoint (RFC
9113): the preface and SETTINGS exchange, PING answers, flow control both ways, header blocks
split into CONTINUATIONs, padding, stream limits and stream resets, and a GOAWAY naming the
error before a connection that breaks the protocol is dropped. What it does not do, gRPC does
not use: server push, priorities (accepted and ignored) and the CONNECT method.

The API mirrors the part of ``h2``'s that ``spider.rpc`` used: ``receive_data`` turns bytes into
events, ``send_headers`` / ``send_data`` / ``reset_stream`` / ``close_connection`` queue frames,
``data_to_send`` takes what is queued.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NoReturn

import attrs
import hpack

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW: Final = 65535
DEFAULT_FRAME_BYTES: Final = 16384
MAX_WINDOW: Final = 2**31 - 1
MAX_STREAM_ID: Final = 2**31 - 1
MAX_CONCURRENT_STREAMS: Final = 100
"""The most request streams a client may have open at once (what ``h2`` granted)."""
MAX_HEADER_LIST_BYTES: Final = 65536
"""The largest decoded header list taken (what ``h2`` took); a larger one ends the
connection."""
MAX_HEADER_FRAGMENTS: Final = 128
"""The most frames (HEADERS and its CONTINUATIONs) one header block may come in."""

_HEADER: Final = struct.Struct(">I")
_SETTING: Final = struct.Struct(">HI")


class FrameType(enum.IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    ENHANCE_YOUR_CALM = 0xB


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


_END_STREAM: Final = 0x1
_ACK: Final = 0x1
_END_HEADERS: Final = 0x4
_PADDED: Final = 0x8
_PRIORITY: Final = 0x20


class Http2ProtocolError(Exception):
    """The peer broke HTTP/2: a GOAWAY naming ``code`` is queued and the connection must end."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamClosedError(Exception):
    """The stream is closed (or reset) for what was asked: nothing more can be sent on it."""


class NoStreamIdsLeft(Exception):
    """The client has used every stream id (2^31 / 2 of them): a new connection is needed."""


# ---- events ------------------------------------------------------------------------------------


@attrs.frozen
class HeadersReceived:
    """A header block: a request's headers, a response's, or trailers."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]
    opened: bool
    """The block opened the stream: a new request, on a server."""


@attrs.frozen
class DataReceived:
    stream_id: int
    data: bytes
    flow_controlled_length: int
    """The bytes the frame took from the windows (padding included), to acknowledge."""


@attrs.frozen
class StreamEnded:
    """The peer sent END_STREAM: it sends nothing more on the stream."""

    stream_id: int


@attrs.frozen
class StreamReset:
    stream_id: int
    error_code: int


@attrs.frozen
class WindowsChanged:
    """The peer granted flow-control window, or changed its settings: blocked sends may go on."""


@attrs.frozen
class ConnectionTerminated:
    """The peer's GOAWAY: streams above ``last_stream_id`` were never processed."""

    error_code: int
    last_stream_id: int


Event = (
    HeadersReceived
    | DataReceived
    | StreamEnded
    | StreamReset
    | WindowsChanged
    | ConnectionTerminated
)


@attrs.define(eq=False)
class _Stream:
    send_window: int
    receive_window: int
    sending: bool = True
    receiving: bool = True
    unacknowledged: int = 0


def frame(kind: FrameType, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: a 9-byte header (length, type, flags, stream id) and ``payload``."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


@attrs.define(eq=False)
class FramedConnection:
    """One HTTP/2 connection's state, either end; see the module docstring."""

    client_side: bool
    window_bytes: int
    """The flow-control window granted per connection and per stream."""
    _queued: bytearray = attrs.field(factory=bytearray)
    _unparsed: bytearray = attrs.field(factory=bytearray)
    """Bytes of a frame (or the preface) not yet whole."""
    _wanted: int = 0
    """How many bytes ``_unparsed`` must hold before parsing it again is worth it."""
    _preface_due: bool = True
    """The server waits for the client's preface; both ends wait for the peer's SETTINGS."""
    _settings_due: bool = True
    _encoder: hpack.Encoder = attrs.field(factory=hpack.Encoder)
    _decoder: hpack.Decoder = attrs.field(
        factory=lambda: hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
    )
    _streams: dict[int, _Stream] = attrs.field(factory=dict)
    _highest_inbound: int = 0
    """The highest stream id the client opened (server side)."""
    _next_stream_id: int = 1
    _send_window: int = DEFAULT_WINDOW
    _receive_window: int = 0
    _unacknowledged: int = 0
    _peer_initial_window: int = DEFAULT_WINDOW
    max_outbound_frame_size: int = DEFAULT_FRAME_BYTES
    peer_max_concurrent_streams: int = MAX_CONCURRENT_STREAMS
    """Until the server's SETTINGS say otherwise, a client assumes the usual 100."""
    _block: list[bytes] = attrs.field(factory=list)
    """The fragments of a header block whose CONTINUATIONs are still due."""
    _block_stream: int = 0
    _block_ends_stream: bool = False
    _block_opens: bool = False
    _block_bytes: int = 0
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._preface_due = not self.client_side
        self._receive_window = self.window_bytes
        settings = [
            (Setting.MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
            (Setting.INITIAL_WINDOW_SIZE, self.window_bytes),
            (Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES),
        ]
        if self.client_side:
            settings.insert(0, (Setting.ENABLE_PUSH, 0))
            self._queued += PREFACE
        self._queued += frame(
            FrameType.SETTINGS, 0, 0, b"".join(_SETTING.pack(*item) for item in settings)
        )
        if self.window_bytes > DEFAULT_WINDOW:
            self._queued += _window_update(0, self.window_bytes - DEFAULT_WINDOW)

    # ---- sending -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """What is queued to be written, in order; the queue is emptied."""
        pending = bytes(self._queued)
        self._queued.clear()
        return pending

    @property
    def queued_bytes(self) -> int:
        """How many bytes are queued for ``data_to_send``."""
        return len(self._queued)

    def get_next_available_stream_id(self) -> int:
        """The id the client's next request stream takes."""
        if self._next_stream_id > MAX_STREAM_ID:
            raise NoStreamIdsLeft(f"stream ids end at {MAX_STREAM_ID}")
        return self._next_stream_id

    @property
    def open_outbound_streams(self) -> int:
        return len(self._streams)

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False
    ) -> None:
        """Queue a header block on ``stream_id``; a client opens the stream with its request."""
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self.client_side or stream_id != self._next_stream_id:
                raise StreamClosedError(f"stream {stream_id} is not open")
            stream = self._streams[stream_id] = _Stream(
                self._peer_initial_window, self.window_bytes
            )
            self._next_stream_id += 2
        elif not stream.sending:
            raise StreamClosedError(f"stream {stream_id} has ended its side")
        block = self._encoder.encode(headers)
        flags = _END_STREAM if end_stream else 0
        limit = self.max_outbound_frame_size
        if len(block) <= limit:
            self._queued += frame(FrameType.HEADERS, flags | _END_HEADERS, stream_id, block)
        else:
            self._queued += frame(FrameType.HEADERS, flags, stream_id, block[:limit])
            for start in range(limit, len(block), limit):
                last = start + limit >= len(block)
                self._queued += frame(
                    FrameType.CONTINUATION,
                    _END_HEADERS if last else 0,
                    stream_id,
                    block[start : start + limit],
                )
        if end_stream:
            self._end_sending(stream_id, stream)

    def local_flow_control_window(self, stream_id: int) -> int:
        """The most data bytes ``stream_id`` may send now (the peer's windows allow)."""
        stream = self._streams.get(stream_id)
        if stream is None or not stream.sending:
            raise StreamClosedError(f"stream {stream_id} is not open for sending")
        return min(self._send_window, stream.send_window)

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Queue one DATA frame; ``data`` must fit the windows and the peer's frame size."""
        if len(data) > min(self.local_flow_control_window(stream_id), self.max_outbound_frame_size):
            raise ValueError("the data exceeds the peer's window or frame size")
        stream = self._streams[stream_id]
        stream.send_window -= len(data)
        self._send_window -= len(data)
        self._queued += frame(FrameType.DATA, _END_STREAM if end_stream else 0, stream_id, data)
        if end_stream:
            self._end_sending(stream_id, stream)

    def acknowledge_received_data(self, length: int, stream_id: int) -> None:
        """The application took ``length`` bytes of the stream's data: grant them again once
        half of a window is taken."""
        self._unacknowledged += length
        if self._unacknowledged >= self.window_bytes // 2:
            self._queued += _window_update(0, self._unacknowledged)
            self._receive_window += self._unacknowledged
            self._unacknowledged = 0
        stream = self._streams.get(stream_id)
        if stream is None or not stream.receiving:
            return
        stream.unacknowledged += length
        if stream.unacknowledged >= self.window_bytes // 2:
            self._queued += _window_update(stream_id, stream.unacknowledged)
            stream.receive_window += stream.unacknowledged
            stream.unacknowledged = 0

    def reset_stream(self, stream_id: int, error_code: ErrorCode = ErrorCode.CANCEL) -> bool:
        """Queue RST_STREAM for an open stream; ``False`` (nothing queued) for a closed one."""
        if self._streams.pop(stream_id, None) is None:
            return False
        self._queued += _rst_stream(stream_id, error_code)
        return True

    def close_connection(self, error_code: ErrorCode = ErrorCode.NO_ERROR) -> None:
        """Queue GOAWAY (once): no new streams; those up to the last one the peer opened may
        still be answered."""
        if self._closed:
            return
        self._closed = True
        last = 0 if self.client_side else self._highest_inbound
        self._queued += frame(FrameType.GOAWAY, 0, 0, _HEADER.pack(last) + _HEADER.pack(error_code))

    def _end_sending(self, stream_id: int, stream: _Stream) -> None:
        stream.sending = False
        if not stream.receiving:
            del self._streams[stream_id]

    # ---- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> list[Event]:
        """The events in ``data`` (and what came before it unparsed).

        Raises ``Http2ProtocolError`` (a GOAWAY queued) if the peer broke the protocol.
        """
        events: list[Event] = []
        if self._unparsed:
            # A frame arriving in many small reads is joined once it is whole, not re-copied
            # on every read.
            self._unparsed += data
            if len(self._unparsed) < self._wanted:
                return events
            buffer = bytes(self._unparsed)
            self._unparsed.clear()
        else:
            buffer = bytes(data)
        self._wanted = 0
        if self._preface_due:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(buffer):
                    self._fail(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 client preface")
                self._unparsed += buffer
                return events
            if not buffer.startswith(PREFACE):
                self._fail(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 client preface")
            buffer = buffer[len(PREFACE) :]
            self._preface_due = False
        at, size = 0, len(buffer)
        while size - at >= 9:
            length = int.from_bytes(buffer[at : at + 3], "big")
            if length > DEFAULT_FRAME_BYTES:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, f"a {length}-byte frame")
            end = at + 9 + length
            if end > size:
                self._wanted = end - at
                break
            kind, flags = buffer[at + 3], buffer[at + 4]
            stream_id = _HEADER.unpack_from(buffer, at + 5)[0] & MAX_STREAM_ID
            self._frame(kind, flags, stream_id, buffer[at + 9 : end], events)
            at = end
        self._unparsed += buffer[at:]
        return events

    def _frame(
        self, kind: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if self._settings_due and kind != FrameType.SETTINGS:
            self._fail(ErrorCode.PROTOCOL_ERROR, "the peer's first frame is not SETTINGS")
        if self._block and kind != FrameType.CONTINUATION:
            self._fail(ErrorCode.PROTOCOL_ERROR, "a header block cut by another frame")
        if kind == FrameType.DATA:
            self._data(flags, stream_id, payload, events)
        elif kind == FrameType.HEADERS:
            self._headers(flags, stream_id, payload, events)
        elif kind == FrameType.CONTINUATION:
            if not self._block or stream_id != self._block_stream:
                self._fail(ErrorCode.PROTOCOL_ERROR, "a CONTINUATION out of place")
            self._add_fragment(payload)
            if flags & _END_HEADERS:
                self._end_block(events)
        elif kind == FrameType.SETTINGS:
            self._settings(flags, stream_id, payload, events)
        elif kind == FrameType.WINDOW_UPDATE:
            self._window_update(stream_id, payload, events)
        elif kind == FrameType.PING:
            if stream_id != 0:
                self._fail(ErrorCode.PROTOCOL_ERROR, "a PING on a stream")
            if len(payload) != 8:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "a PING that is not 8 bytes")
            if not flags & _ACK:
                self._queued += frame(FrameType.PING, _ACK, 0, payload)
        elif kind == FrameType.RST_STREAM:
            if stream_id == 0:
                self._fail(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on the connection")
            if len(payload) != 4:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "an RST_STREAM that is not 4 bytes")
            self._check_not_idle(stream_id)
            if self._streams.pop(stream_id, None) is not None:
                events.append(StreamReset(stream_id, _HEADER.unpack(payload)[0]))
        elif kind == FrameType.GOAWAY:
            if stream_id != 0:
                self._fail(ErrorCode.PROTOCOL_ERROR, "a GOAWAY on a stream")
            if len(payload) < 8:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "a GOAWAY shorter than 8 bytes")
            last, code = struct.unpack_from(">II", payload)
            events.append(ConnectionTerminated(code, last & MAX_STREAM_ID))
        elif kind == FrameType.PRIORITY:
            if stream_id == 0:
                self._fail(ErrorCode.PROTOCOL_ERROR, "PRIORITY on the connection")
            if len(payload) != 5:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "a PRIORITY that is not 5 bytes")
        elif kind == FrameType.PUSH_PROMISE:
            self._fail(ErrorCode.PROTOCOL_ERROR, "server push is not accepted")
        # Frames of unknown types are ignored, as HTTP/2 requires.

    def _unpadded(self, flags: int, payload: bytes) -> bytes:
        if not flags & _PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            self._fail(ErrorCode.PROTOCOL_ERROR, "padding as long as the frame")
        return payload[1 : len(payload) - payload[0]]

    def _data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            self._fail(ErrorCode.PROTOCOL_ERROR, "DATA on the connection")
        length = len(payload)
        self._receive_window -= length
        if self._receive_window < 0:
            self._fail(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        data = self._unpadded(flags, payload)
        stream = self._streams.get(stream_id)
        if stream is None or not stream.receiving:
            self._check_not_idle(stream_id)
            # A stream this end reset or finished: the peer may not have known yet. Its bytes
            # still count against the connection's window, so grant them again.
            self.acknowledge_received_data(length, 0)
            if stream is not None:
                self.reset_stream(stream_id, ErrorCode.STREAM_CLOSED)
                events.append(StreamReset(stream_id, ErrorCode.STREAM_CLOSED))
            return
        stream.receive_window -= length
        if stream.receive_window < 0:
            self.acknowledge_received_data(length, 0)
            self.reset_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
            events.append(StreamReset(stream_id, ErrorCode.FLOW_CONTROL_ERROR))
            return
        events.append(DataReceived(stream_id, data, length))
        if flags & _END_STREAM:
            self._end_receiving(stream_id, stream, events)

    def _headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            self._fail(ErrorCode.PROTOCOL_ERROR, "HEADERS on the connection")
        fragment = self._unpadded(flags, payload)
        if flags & _PRIORITY:
            if len(fragment) < 5:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            fragment = fragment[5:]
        opens = False
        if stream_id not in self._streams:
            if self.client_side:
                self._check_not_idle(stream_id)
            elif stream_id > self._highest_inbound:
                if stream_id % 2 == 0:
                    self._fail(ErrorCode.PROTOCOL_ERROR, "a client stream with an even id")
                self._highest_inbound = stream_id
                if self._closed or len(self._streams) >= MAX_CONCURRENT_STREAMS:
                    self._queued += _rst_stream(stream_id, ErrorCode.REFUSED_STREAM)
                else:
                    self._streams[stream_id] = _Stream(self._peer_initial_window, self.window_bytes)
                    opens = True
        self._block = []
        self._block_bytes = 0
        self._block_stream = stream_id
        self._block_ends_stream = bool(flags & _END_STREAM)
        self._block_opens = opens
        self._add_fragment(fragment)
        if flags & _END_HEADERS:
            self._end_block(events)

    def _add_fragment(self, fragment: bytes) -> None:
        self._block_bytes += len(fragment)
        if self._block_bytes > MAX_HEADER_LIST_BYTES:
            self._fail(ErrorCode.ENHANCE_YOUR_CALM, "a header block over the size allowed")
        if len(self._block) >= MAX_HEADER_FRAGMENTS:
            # Empty CONTINUATIONs add no bytes but would each be kept: a flood of them is
            # bounded by count.
            self._fail(ErrorCode.ENHANCE_YOUR_CALM, "a header block in too many frames")
        self._block.append(fragment)

    def _end_block(self, events: list[Event]) -> None:
        block = b"".join(self._block)
        self._block = []
        stream_id = self._block_stream
        try:
            # Decoded even for a stream that is gone: the decoder's table must stay in step.
            headers = self._decoder.decode(block, raw=True)
        except hpack.OversizedHeaderListError:
            self._fail(ErrorCode.ENHANCE_YOUR_CALM, "a header list over the size allowed")
        except hpack.HPACKError as exc:
            self._fail(ErrorCode.COMPRESSION_ERROR, f"a header block that does not decode: {exc}")
        stream = self._streams.get(stream_id)
        if stream is None or not stream.receiving:
            return
        pairs = [(bytes(key), bytes(value)) for key, value in headers]
        events.append(HeadersReceived(stream_id, pairs, self._block_opens))
        if self._block_ends_stream:
            self._end_receiving(stream_id, stream, events)

    def _end_receiving(self, stream_id: int, stream: _Stream, events: list[Event]) -> None:
        stream.receiving = False
        if not stream.sending:
            del self._streams[stream_id]
        events.append(StreamEnded(stream_id))

    def _settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            self._fail(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & _ACK:
            if payload:
                self._fail(ErrorCode.FRAME_SIZE_ERROR, "a SETTINGS acknowledgement with a body")
            return
        if len(payload) % 6:
            self._fail(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS not in 6-byte entries")
        self._settings_due = False
        # Each entry is checked, but only a setting's last value in the frame is applied: a
        # frame may repeat one setting thousands of times, and a window change walks every
        # open stream.
        latest: dict[int, int] = {}
        for code, value in _SETTING.iter_unpack(payload):
            if code == Setting.INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
                self._fail(ErrorCode.FLOW_CONTROL_ERROR, "an initial window over 2^31-1")
            if code == Setting.MAX_FRAME_SIZE and not DEFAULT_FRAME_BYTES <= value <= 2**24 - 1:
                self._fail(ErrorCode.PROTOCOL_ERROR, f"a maximum frame size of {value}")
            if code == Setting.ENABLE_PUSH and value > (0 if self.client_side else 1):
                # A server may not offer push at all (RFC 9113, 6.5.2).
                self._fail(ErrorCode.PROTOCOL_ERROR, f"ENABLE_PUSH of {value}")
            latest[code] = value
        if (window := latest.get(Setting.INITIAL_WINDOW_SIZE)) is not None:
            delta = window - self._peer_initial_window
            self._peer_initial_window = window
            for stream in self._streams.values():
                stream.send_window += delta
                if stream.send_window > MAX_WINDOW:
                    self._fail(ErrorCode.FLOW_CONTROL_ERROR, "a stream window over 2^31-1")
        if (frame_bytes := latest.get(Setting.MAX_FRAME_SIZE)) is not None:
            self.max_outbound_frame_size = frame_bytes
        if (table_bytes := latest.get(Setting.HEADER_TABLE_SIZE)) is not None:
            self._encoder.header_table_size = table_bytes
        if (streams := latest.get(Setting.MAX_CONCURRENT_STREAMS)) is not None:
            self.peer_max_concurrent_streams = streams
        self._queued += frame(FrameType.SETTINGS, _ACK, 0)
        events.append(WindowsChanged())

    def _window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            self._fail(ErrorCode.FRAME_SIZE_ERROR, "a WINDOW_UPDATE that is not 4 bytes")
        increment = _HEADER.unpack(payload)[0] & MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                self._fail(ErrorCode.PROTOCOL_ERROR, "a connection window update of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                self._fail(ErrorCode.FLOW_CONTROL_ERROR, "a connection window over 2^31-1")
        else:
            self._check_not_idle(stream_id)
            stream = self._streams.get(stream_id)
            if stream is None:
                return
            if increment == 0 or stream.send_window + increment > MAX_WINDOW:
                self.reset_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
                events.append(StreamReset(stream_id, ErrorCode.FLOW_CONTROL_ERROR))
                return
            stream.send_window += increment
        events.append(WindowsChanged())

    def _check_not_idle(self, stream_id: int) -> None:
        # A frame on a stream never opened (an "idle" one) breaks the protocol. Only clients
        # open streams here: odd ids, each higher than the last.
        if self.client_side:
            idle = stream_id % 2 == 0 or stream_id >= self._next_stream_id
        else:
            idle = stream_id % 2 == 0 or stream_id > self._highest_inbound
        if idle:
            self._fail(ErrorCode.PROTOCOL_ERROR, f"a frame on stream {stream_id}, never opened")

    def _fail(self, code: ErrorCode, message: str) -> NoReturn:
        self.close_connection(code)
        raise Http2ProtocolError(code, message)


def _rst_stream(stream_id: int, error_code: ErrorCode) -> bytes:
    return frame(FrameType.RST_STREAM, 0, stream_id, _HEADER.pack(error_code))


def _window_update(stream_id: int, increment: int) -> bytes:
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, _HEADER.pack(increment))
