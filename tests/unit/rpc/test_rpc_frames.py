"""``spider.rpc._frames``: HTTP/2 framed by hand, checked against ``h2`` as the peer.

``h2`` is an independent implementation of the same RFC, so every exchange here is judged by
it: what ``FramedConnection`` writes must parse there, and what ``h2`` writes must parse here.
"""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.rpc._frames import (
    MAX_CONCURRENT_STREAMS,
    MAX_STREAM_ID,
    PREFACE,
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    FramedConnection,
    FrameType,
    HeadersReceived,
    Http2ProtocolError,
    NoStreamIdsLeft,
    StreamClosedError,
    StreamEnded,
    StreamReset,
    frame,
)

WINDOW = 4 * 1024 * 1024
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/scheduler.SchedulerService/Heartbeat"),
    (b":authority", b"127.0.0.1"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]


def h2_peer(*, client_side: bool) -> h2.connection.H2Connection:
    peer = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=client_side, header_encoding=None)
    )
    peer.initiate_connection()
    return peer


def connected_server() -> tuple[FramedConnection, h2.connection.H2Connection]:
    """A ``FramedConnection`` server and an ``h2`` client that have exchanged settings."""
    server = FramedConnection(client_side=False, window_bytes=WINDOW)
    client = h2_peer(client_side=True)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the client's acknowledgement
    return server, client


def settled_server() -> FramedConnection:
    """A server past the preface and the client's SETTINGS, nothing else."""
    server = FramedConnection(client_side=False, window_bytes=WINDOW)
    server.receive_data(PREFACE + frame(FrameType.SETTINGS, 0, 0))
    server.data_to_send()
    return server


def goaway_code(queued: bytes) -> int:
    """The error code of the last frame queued, which must be a GOAWAY."""
    at = 0
    last: tuple[int, bytes] = (-1, b"")
    while at < len(queued):
        length = int.from_bytes(queued[at : at + 3], "big")
        last = (queued[at + 3], queued[at + 9 : at + 9 + length])
        at += 9 + length
    kind, payload = last
    assert kind == FrameType.GOAWAY
    return int.from_bytes(payload[4:8], "big")


def test_a_unary_call_with_h2_as_the_client() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    client.send_data(stream_id, b"\0\0\0\0\2hi", end_stream=True)

    events = server.receive_data(client.data_to_send())

    assert [type(event) for event in events] == [HeadersReceived, DataReceived, StreamEnded]
    assert events[0] == HeadersReceived(stream_id, REQUEST, opened=True)
    assert isinstance(events[1], DataReceived)
    assert events[1].data == b"\0\0\0\0\2hi"
    server.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.send_data(stream_id, b"\0\0\0\0\2ok")
    server.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
    answer = client.receive_data(server.data_to_send())
    kinds = [type(event) for event in answer]
    assert kinds == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]
    assert isinstance(answer[1], h2.events.DataReceived)
    assert answer[1].data == b"\0\0\0\0\2ok"
    with pytest.raises(StreamClosedError):
        server.send_data(stream_id, b"late")


def test_a_unary_call_with_h2_as_the_server() -> None:
    client = FramedConnection(client_side=True, window_bytes=WINDOW)
    server = h2_peer(client_side=False)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    client.send_data(stream_id, b"\0\0\0\0\1x", end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert any(isinstance(event, h2.events.RequestReceived) for event in events)
    server.send_headers(stream_id, [(b":status", b"200")])
    server.send_data(stream_id, b"\0\0\0\0\1y")
    server.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

    answer = client.receive_data(server.data_to_send())

    headers = [event for event in answer if isinstance(event, HeadersReceived)]
    assert [event.headers for event in headers] == [
        [(b":status", b"200")],
        [(b"grpc-status", b"0")],
    ]
    assert [event.data for event in answer if isinstance(event, DataReceived)] == [b"\0\0\0\0\1y"]
    assert isinstance(answer[-1], StreamEnded)
    assert client.open_outbound_streams == 0
    assert client.get_next_available_stream_id() == stream_id + 2


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_frames_split_anywhere_across_reads_give_the_same_events(cuts: list[int]) -> None:
    whole_server, client = connected_server()
    for _ in range(3):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, [*REQUEST, (b"x-pad-bin", b"YWJj" * 50)])
        client.send_data(stream_id, b"\0\0\0\0\3abc", end_stream=True)
    wire = client.data_to_send()
    expected = whole_server.receive_data(wire)

    split_server, client = connected_server()
    events = []
    at = 0
    for cut in cuts:
        events += split_server.receive_data(wire[at : at + cut])
        at += cut
    events += split_server.receive_data(wire[at:])

    assert events == expected
    assert len(expected) == 9


def test_headers_longer_than_a_frame_go_as_continuations_h2_reads() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    big = (b"x-big", b"v" * 40_000)  # one header value over two 16 KiB frames, huffman aside

    server.send_headers(stream_id, [(b":status", b"200"), big], end_stream=True)
    queued = server.data_to_send()

    assert queued.count(bytes((FrameType.CONTINUATION,))) >= 1
    answer = client.receive_data(queued)
    response = [event for event in answer if isinstance(event, h2.events.ResponseReceived)]
    assert response
    assert big in response[0].headers


def test_data_waits_for_the_peer_s_window_and_goes_on_when_it_grows() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(stream_id, [(b":status", b"200")])

    window = server.local_flow_control_window(stream_id)
    assert window == 65535  # h2's defaults: the client granted nothing more
    sent = 0
    while (room := min(server.local_flow_control_window(stream_id), 16384)) > 0:
        server.send_data(stream_id, b"d" * room)
        sent += room
    assert sent == window
    with pytest.raises(ValueError, match="window"):
        server.send_data(stream_id, b"d")
    received = client.receive_data(server.data_to_send())
    for event in received:
        if isinstance(event, h2.events.DataReceived):
            client.acknowledge_received_data(event.flow_controlled_length, stream_id)
    client.increment_flow_control_window(100_000)
    client.increment_flow_control_window(100_000, stream_id=stream_id)
    server.receive_data(client.data_to_send())

    assert server.local_flow_control_window(stream_id) > 0


def test_a_peer_s_new_initial_window_moves_every_open_stream_s_window() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    server.receive_data(client.data_to_send())
    before = server.local_flow_control_window(stream_id)

    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    server.receive_data(client.data_to_send())

    assert server.local_flow_control_window(stream_id) == before - (65535 - 1000)


def test_requests_beyond_the_stream_limit_are_refused_alone() -> None:
    server = settled_server()
    encoder = hpack.Encoder()
    wire = b"".join(
        frame(FrameType.HEADERS, 0x4, 2 * index + 1, encoder.encode(REQUEST))
        for index in range(MAX_CONCURRENT_STREAMS + 1)
    )

    events = server.receive_data(wire)

    opened = [event for event in events if isinstance(event, HeadersReceived)]
    assert len(opened) == MAX_CONCURRENT_STREAMS
    refused = server.data_to_send()
    last = 2 * MAX_CONCURRENT_STREAMS + 1
    assert refused == frame(
        FrameType.RST_STREAM, 0, last, struct.pack(">I", ErrorCode.REFUSED_STREAM)
    )


def test_a_reset_stream_s_late_frames_are_taken_and_dropped() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    server.receive_data(client.data_to_send())
    server.reset_stream(stream_id, ErrorCode.CANCEL)
    client.send_data(stream_id, b"late")  # in flight before the client saw the reset

    assert server.receive_data(client.data_to_send()) == []


def test_the_client_s_reset_ends_the_stream() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    server.receive_data(client.data_to_send())
    client.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)

    events = server.receive_data(client.data_to_send())

    assert events == [StreamReset(stream_id, ErrorCode.CANCEL)]
    with pytest.raises(StreamClosedError):
        server.send_headers(stream_id, [(b":status", b"200")])


def test_a_ping_is_answered_with_its_payload() -> None:
    server = settled_server()
    server.receive_data(frame(FrameType.PING, 0, 0, b"12345678"))
    assert server.data_to_send() == frame(FrameType.PING, 0x1, 0, b"12345678")


BROKEN = {
    "a frame over the maximum size": (
        frame(FrameType.DATA, 0, 1, bytes(16385)),
        ErrorCode.FRAME_SIZE_ERROR,
    ),
    "HEADERS on stream 0": (frame(FrameType.HEADERS, 0x4, 0, b"\x82"), ErrorCode.PROTOCOL_ERROR),
    "a client stream with an even id": (
        frame(FrameType.HEADERS, 0x4, 2, b"\x82"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "a CONTINUATION with no HEADERS": (
        frame(FrameType.CONTINUATION, 0x4, 1, b"\x82"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "a header block cut by a PING": (
        frame(FrameType.HEADERS, 0, 1, b"\x82") + frame(FrameType.PING, 0, 0, bytes(8)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "a header block that does not decode": (
        frame(FrameType.HEADERS, 0x4, 1, b"\xff\xff\xff\xff\x0f"),
        ErrorCode.COMPRESSION_ERROR,
    ),
    "a header block over the size allowed": (
        frame(FrameType.HEADERS, 0, 1, bytes(16384))
        + b"".join(frame(FrameType.CONTINUATION, 0, 1, bytes(16384)) for _ in range(4)),
        ErrorCode.ENHANCE_YOUR_CALM,
    ),
    "a header block in 200 empty frames": (
        frame(FrameType.HEADERS, 0, 1, b"")
        + b"".join(frame(FrameType.CONTINUATION, 0, 1, b"") for _ in range(200)),
        ErrorCode.ENHANCE_YOUR_CALM,
    ),
    "padding as long as the frame": (
        frame(FrameType.HEADERS, 0x4 | 0x8, 1, b"\x05abc"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "DATA on a stream never opened": (
        frame(FrameType.DATA, 0, 7, b"x"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "a PING of 7 bytes": (frame(FrameType.PING, 0, 0, bytes(7)), ErrorCode.FRAME_SIZE_ERROR),
    "SETTINGS of 5 bytes": (frame(FrameType.SETTINGS, 0, 0, bytes(5)), ErrorCode.FRAME_SIZE_ERROR),
    "an initial window over 2^31-1": (
        frame(FrameType.SETTINGS, 0, 0, struct.pack(">HI", 4, 2**31)),
        ErrorCode.FLOW_CONTROL_ERROR,
    ),
    "a connection window over 2^31-1": (
        frame(FrameType.WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)),
        ErrorCode.FLOW_CONTROL_ERROR,
    ),
    "a window update of 0": (
        frame(FrameType.WINDOW_UPDATE, 0, 0, bytes(4)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "a server push": (frame(FrameType.PUSH_PROMISE, 0x4, 1, bytes(4)), ErrorCode.PROTOCOL_ERROR),
}


@pytest.mark.parametrize(("wire", "code"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_peer_gets_a_goaway_naming_its_error(wire: bytes, code: ErrorCode) -> None:
    server = settled_server()
    with pytest.raises(Http2ProtocolError) as raised:
        server.receive_data(wire)
    assert raised.value.code == code
    assert goaway_code(server.data_to_send()) == code


def test_data_beyond_the_connection_s_window_breaks_the_protocol() -> None:
    server = FramedConnection(client_side=False, window_bytes=65535)
    server.receive_data(PREFACE + frame(FrameType.SETTINGS, 0, 0))
    server.receive_data(frame(FrameType.HEADERS, 0x4, 1, hpack.Encoder().encode(REQUEST)))
    server.data_to_send()
    for _ in range(4):  # 64,000 bytes: inside the default window of 65,535
        server.receive_data(frame(FrameType.DATA, 0, 1, bytes(16000)))
    with pytest.raises(Http2ProtocolError) as raised:
        server.receive_data(frame(FrameType.DATA, 0, 1, bytes(16000)))
    assert raised.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_a_client_that_does_not_speak_http2_is_told_so() -> None:
    server = FramedConnection(client_side=False, window_bytes=WINDOW)
    with pytest.raises(Http2ProtocolError):
        server.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(Http2ProtocolError):
        FramedConnection(client_side=False, window_bytes=WINDOW).receive_data(
            PREFACE + frame(FrameType.PING, 0, 0, bytes(8))
        )


@given(st.binary(max_size=400))
def test_any_bytes_after_the_preface_are_events_or_a_protocol_error(wire: bytes) -> None:
    server = settled_server()
    code = None
    try:
        server.receive_data(wire)
    except Http2ProtocolError as error:
        code = error.code
    if code is not None:
        assert goaway_code(server.data_to_send()) == code


FRAMES = st.builds(
    frame,
    st.sampled_from(list(FrameType)),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=9),
    st.binary(max_size=40),
)


@given(st.lists(FRAMES, max_size=12))
def test_any_frames_after_the_preface_are_events_or_a_protocol_error(frames: list[bytes]) -> None:
    # Well-formed frame headers with any type, flags, stream and payload reach every handler,
    # which random bytes mostly do not: only ``Http2ProtocolError`` may come out.
    server = settled_server()
    code = None
    try:
        for one in frames:
            server.receive_data(one)
    except Http2ProtocolError as error:
        code = error.code
    if code is not None:
        assert goaway_code(server.data_to_send()) == code


def connected_client() -> tuple[FramedConnection, h2.connection.H2Connection]:
    """A ``FramedConnection`` client and an ``h2`` server that have exchanged settings."""
    client = FramedConnection(client_side=True, window_bytes=WINDOW)
    server = h2_peer(client_side=False)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def test_a_goaway_tells_the_client_which_calls_the_server_never_saw() -> None:
    client, server = connected_client()
    for _ in range(2):
        client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.close_connection(last_stream_id=1)

    events = client.receive_data(server.data_to_send())

    assert events == [ConnectionTerminated(ErrorCode.NO_ERROR, 1)]


def test_the_server_s_stream_limit_reaches_the_client() -> None:
    client, _server = connected_client()
    assert client.peer_max_concurrent_streams == 100  # h2's default grant
    client.receive_data(frame(FrameType.SETTINGS, 0, 0, struct.pack(">HI", 3, 7)))
    assert client.peer_max_concurrent_streams == 7


def test_a_client_out_of_stream_ids_says_so() -> None:
    client, _server = connected_client()
    client._next_stream_id = MAX_STREAM_ID  # the last odd id; reaching it takes 2^30 calls
    client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
    with pytest.raises(NoStreamIdsLeft):
        client.get_next_available_stream_id()


def test_a_server_push_breaks_the_protocol_for_the_client() -> None:
    client, _server = connected_client()
    with pytest.raises(Http2ProtocolError) as raised:
        client.receive_data(frame(FrameType.PUSH_PROMISE, 0x4, 1, bytes(4)))
    assert raised.value.code == ErrorCode.PROTOCOL_ERROR


def test_a_setting_repeated_in_one_frame_takes_its_last_value() -> None:
    server, client = connected_server()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    server.receive_data(client.data_to_send())
    entries = b"".join(struct.pack(">HI", 4, window) for window in (10, 70_000, 1000))
    server.receive_data(frame(FrameType.SETTINGS, 0, 0, entries))
    assert server.local_flow_control_window(stream_id) == 1000


def test_a_server_offering_push_breaks_the_protocol_for_the_client() -> None:
    client, _server = connected_client()
    with pytest.raises(Http2ProtocolError) as raised:
        client.receive_data(frame(FrameType.SETTINGS, 0, 0, struct.pack(">HI", 2, 1)))
    assert raised.value.code == ErrorCode.PROTOCOL_ERROR
