"""``ServerConnection`` and ``ClientConnection`` against peers that push them: slow writes,
small windows, stream limits, resets as fast as a client can send them, GOAWAY, PING floods.

Each peer speaks raw HTTP/2 (``FramedConnection`` or hand-built frames) over Trio's in-memory
streams, with the autojump clock: time passes only when every task waits, so a call that
stalls shows as the test's bound being reached, never as a slow test.
"""

from __future__ import annotations

import struct

import attrs
import hpack
import trio
import trio.testing

from spider.rpc._client_connection import (
    QUEUED_BYTES_LIMIT,
    Answer,
    ClientConnection,
    message_of,
)
from spider.rpc._frames import (
    PREFACE,
    DataReceived,
    ErrorCode,
    FramedConnection,
    FrameType,
    StreamEnded,
    frame,
)
from spider.rpc._server_connection import MAX_RUNNING_CALLS, ServerCall, ServerConnection

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/a.B/C"),
    (b":authority", b"x"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]
REPLY_BYTES = 400_000
BOUND = 60.0


@attrs.define(eq=False)
class SlowStream(trio.abc.Stream):
    """A stream whose writes take a moment, as a busy socket's do."""

    inner: trio.abc.Stream
    delay: float

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.sleep(self.delay)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def serving(stream: trio.abc.Stream, dispatch: object) -> ServerConnection:
    return ServerConnection(stream, None, dispatch, 1 << 20, 1.0)  # type: ignore[arg-type]


async def test_replies_waiting_for_window_are_not_stalled_by_a_slow_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A WINDOW_UPDATE read while a reply's write of its first window waited must not be lost:
    # the reply would wait for an update the client will never send again.
    for delay in (0.0005, 0.002) * 5:
        client_end, server_end = trio.testing.memory_stream_pair()

        async def reply(call: ServerCall) -> None:
            await call.send_reply(b"r" * REPLY_BYTES)

        server = serving(SlowStream(server_end, delay), reply)
        client = FramedConnection(client_side=True, window_bytes=65535)
        received: dict[int, int] = {}
        ended: set[int] = set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            for _ in range(3):
                stream_id = client.get_next_available_stream_id()
                client.send_headers(stream_id, REQUEST)
                client.send_data(stream_id, b"\0\0\0\0\0", end_stream=True)
                received[stream_id] = 0
            await client_end.send_all(client.data_to_send())
            with trio.move_on_after(BOUND):
                while len(ended) < 3:
                    for event in client.receive_data(await client_end.receive_some(65536)):
                        if isinstance(event, DataReceived):
                            received[event.stream_id] += len(event.data)
                            client.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, StreamEnded):
                            ended.add(event.stream_id)
                    if pending := client.data_to_send():
                        await client_end.send_all(pending)
            nursery.cancel_scope.cancel()
        assert len(ended) == 3, f"replies stalled at {received} bytes (write delay {delay})"
        assert set(received.values()) == {REPLY_BYTES + 5}


async def test_streams_reset_as_fast_as_they_open_cannot_pile_up_call_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    running = running_peak = 0

    async def hang(call: ServerCall) -> None:
        nonlocal running, running_peak
        running += 1
        running_peak = max(running_peak, running)
        try:
            await trio.sleep_forever()
        finally:
            running -= 1

    server = serving(server_end, hang)
    encoder = hpack.Encoder()
    flood = PREFACE + frame(FrameType.SETTINGS, 0, 0)
    for index in range(1000):
        stream_id = 2 * index + 1
        flood += frame(FrameType.HEADERS, 0x4, stream_id, encoder.encode(REQUEST))
        flood += frame(FrameType.RST_STREAM, 0, stream_id, struct.pack(">I", ErrorCode.CANCEL))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        await client_end.send_all(flood)
        await trio.sleep(1)  # the server has read and answered it all
        answered = await client_end.receive_some(1 << 20)
        nursery.cancel_scope.cancel()

    assert 0 < running_peak <= MAX_RUNNING_CALLS
    refused = frame(FrameType.RST_STREAM, 0, 0, struct.pack(">I", ErrorCode.REFUSED_STREAM))
    assert bytes(answered).count(refused[3:5]) > 0  # RST_STREAM frames went out


async def test_a_reply_to_a_request_still_open_frees_its_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()

    async def reply_at_once(call: ServerCall) -> None:
        await call.send_reply(b"")

    server = serving(server_end, reply_at_once)
    client = FramedConnection(client_side=True, window_bytes=65535)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        for _ in range(3):
            client.send_headers(client.get_next_available_stream_id(), REQUEST)  # no END_STREAM
        await client_end.send_all(client.data_to_send())
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    # Three answers, each followed by RST_STREAM NO_ERROR: the streams count no more.
    assert server.protocol.open_outbound_streams == 0


def _granting(max_streams: int) -> bytes:
    return frame(FrameType.SETTINGS, 0, 0, struct.pack(">HI", 3, max_streams))


async def test_a_stream_freed_by_a_cancelled_call_goes_to_a_waiting_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    connection = ClientConnection(client_end, b"x", b"http")
    sent_second = trio.Event()

    async def silent_server() -> None:
        await server_end.send_all(_granting(1))
        peer = FramedConnection(client_side=False, window_bytes=65535)
        while data := await server_end.receive_some(65536):
            for event in peer.receive_data(data):
                if getattr(event, "stream_id", 0) == 3:
                    sent_second.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(silent_server)
        nursery.start_soon(connection.run)
        await trio.sleep(0.1)

        async def first() -> None:
            with trio.move_on_after(0.5):
                await connection.call(b"/a.B/C", b"", 0.5, [])

        nursery.start_soon(first)
        await trio.sleep(0.1)
        nursery.start_soon(connection.call, b"/a.B/C", b"", 30.0, [])
        began = trio.current_time()
        with trio.move_on_after(BOUND):
            await sent_second.wait()
        waited = trio.current_time() - began
        nursery.cancel_scope.cancel()
    assert waited < 1.0  # sent when the first call gave up at 0.5 s, not at some later frame


async def test_a_call_waiting_for_a_stream_when_the_server_goes_away_fails_as_an_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    connection = ClientConnection(client_end, b"x", b"http")
    second: list[Answer] = []
    answered = trio.Event()

    async def server_going_away() -> None:
        await server_end.send_all(_granting(1))
        await trio.sleep(1)
        await server_end.send_all(frame(FrameType.GOAWAY, 0, 0, struct.pack(">II", 1, 0)))
        while await server_end.receive_some(65536):
            pass

    async def call_second() -> None:
        second.append(await connection.call(b"/a.B/C", b"", 30.0, []))
        answered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_going_away)
        nursery.start_soon(connection.run)
        await trio.sleep(0.1)
        nursery.start_soon(connection.call, b"/a.B/C", b"", 30.0, [])  # takes the one stream
        await trio.sleep(0.1)
        nursery.start_soon(call_second)  # waits for a stream; raised before the fix
        with trio.move_on_after(BOUND):
            await answered.wait()
        nursery.cancel_scope.cancel()
    assert second
    assert second[0].failure is not None


async def test_a_server_that_pings_without_reading_cannot_grow_the_client_s_memory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_end, server_end = trio.testing.lockstep_stream_pair()
    connection = ClientConnection(client_end, b"x", b"http")
    pings = frame(FrameType.PING, 0, 0, b"12345678") * 4000  # 68 KB, 4,000 answers owed
    sent = 0

    async def flooding_server() -> None:
        nonlocal sent
        await server_end.send_all(frame(FrameType.SETTINGS, 0, 0))
        while sent < 20_000_000:  # never reads a byte
            await server_end.send_all(pings)
            sent += len(pings)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        with trio.move_on_after(5):
            await flooding_server()
        queued = connection.protocol.queued_bytes
        nursery.cancel_scope.cancel()
    assert sent < 20_000_000  # the client stopped reading...
    assert queued <= QUEUED_BYTES_LIMIT + len(pings)  # ...once its answers were owed


def test_a_reply_body_past_its_one_message_is_not_kept() -> None:
    answer = Answer()
    answer._feed(b"\0\0\0\0\3ab")
    answer._feed(b"c" + b"x" * 10_000)
    assert bytes(answer.body) == b"\0\0\0\0\3abc"
    assert answer.overflowed
    assert message_of(answer) is None
