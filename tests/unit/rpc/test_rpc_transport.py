"""The HTTP/2 transport of ``spider.rpc`` on the Trio thread: what gRPC over ``h2`` must get right
beyond one small call (flow control, stream limits, metadata, broken peers, header codecs).

Real sockets mean real time: time only appears as bounds a broken feature would hit.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote_to_bytes

import h2.config
import h2.connection
import h2.settings
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import HeartbeatRequest, SchedulerServiceBase, SchedulerServiceStub
from spider.proto.storage import (
    JobIdRequest,
    JobOrchestrationServiceBase,
    JobOrchestrationServiceStub,
    JobOutputsResponse,
    RegisterJobRequest,
    RegisterJobResponse,
)
from spider.rpc import _server_connection
from spider.rpc._http2 import WINDOW_BYTES, grpc_timeout, grpc_timeout_header, percent_encoded
from spider.rpc._server import _Server

from .rpc_services import (
    LOOPBACK,
    RecordingScheduler,
    event_on_warning,
    running_server,
    start_stoppable_server,
)

TEST_BOUND = 20.0
LARGE = 3 * WINDOW_BYTES // 2 + 12_345
"""More than one flow-control window: the sender must wait for the receiver's updates."""


class SizedJobs(JobOrchestrationServiceBase):
    """``RegisterJob`` answers the graph's size; ``GetJobOutputs`` answers ``job_id`` bytes."""

    async def register_job(self, request: RegisterJobRequest) -> RegisterJobResponse:
        graph = request.compressed_serialized_task_graph
        assert graph == _pattern(len(graph))
        return RegisterJobResponse(job_id=len(graph))

    async def get_job_outputs(self, request: JobIdRequest) -> JobOutputsResponse:
        return JobOutputsResponse(serialized_outputs=_pattern(request.job_id))


def _pattern(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


async def test_messages_larger_than_a_flow_control_window_arrive_whole() -> None:
    config = rpc.ServerConfig(max_request_bytes=2 * LARGE)
    with trio.fail_after(TEST_BOUND):
        async with (
            running_server([SizedJobs()], config=config) as endpoint,
            rpc.connect_channel(endpoint) as channel,
        ):
            registered = await channel.call(
                JobOrchestrationServiceStub.register_job,
                RegisterJobRequest(compressed_serialized_task_graph=_pattern(LARGE)),
            )
            outputs = await channel.call(
                JobOrchestrationServiceStub.get_job_outputs, JobIdRequest(job_id=LARGE)
            )
    assert registered.job_id == LARGE
    assert outputs.serialized_outputs == _pattern(LARGE)


class GatedScheduler(SchedulerServiceBase):
    """Heartbeats wait until the test opens the gate, counting those waiting."""

    def __init__(self) -> None:
        self.waiting = 0
        self.all_waiting = trio.Event()
        self.gate = trio.Event()
        self.expected = 0

    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        self.waiting += 1
        if self.waiting == self.expected:
            self.all_waiting.set()
        await self.gate.wait()
        return Void()


async def test_calls_beyond_the_server_s_stream_limit_wait_for_a_free_stream() -> None:
    # serve allows 100 concurrent streams per connection; a channel of one connection with 150
    # calls in flight must hold the last 50 back rather than break the connection.
    scheduler = GatedScheduler()
    scheduler.expected = 100
    answered: list[int] = []
    with trio.fail_after(TEST_BOUND):
        async with (
            running_server([scheduler]) as endpoint,
            rpc.connect_channel(endpoint) as channel,
        ):

            async def beat(em: int) -> None:
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=em)
                )
                answered.append(em)

            async with trio.open_nursery() as callers:
                for em in range(150):
                    callers.start_soon(beat, em)
                await scheduler.all_waiting.wait()
                assert scheduler.waiting == 100
                scheduler.gate.set()
    assert sorted(answered) == list(range(150))


class MetadataReporter(SchedulerServiceBase):
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        self.seen.append(rpc.current_metadata())
        return Void()


async def test_call_metadata_reaches_the_handler_text_and_binary() -> None:
    reporter = MetadataReporter()
    config = rpc.RpcConfig(metadata=(("x-team", "storage"), ("x-trace-bin", b"\x00\xff\x10binary")))
    async with (
        running_server([reporter]) as endpoint,
        rpc.connect_channel(endpoint, config) as channel,
    ):
        await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
    [metadata] = reporter.seen
    assert isinstance(metadata, dict)
    assert metadata["x-team"] == "storage"
    assert metadata["x-trace-bin"] == b"\x00\xff\x10binary"
    # What gRPC reserves is not metadata.
    assert not any(key.startswith((":", "grpc-")) for key in metadata)
    assert "content-type" not in metadata


async def test_a_peer_that_breaks_http2_loses_only_its_own_connection() -> None:
    with trio.fail_after(TEST_BOUND):
        async with (
            running_server([RecordingScheduler()]) as endpoint,
            rpc.connect_channel(endpoint) as channel,
        ):
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
            broken = await trio.open_tcp_stream(LOOPBACK, endpoint.port)
            await broken.send_all(b"GET / HTTP/1.1\r\nHost: spider\r\n\r\n" + b"\xff" * 64)
            # The server answers the broken preface by closing that connection.
            try:
                while await broken.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass  # closed with our bytes unread: a reset, as good as a close
            await broken.aclose()
            # The established connection is still served.
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())


async def test_a_connection_closed_mid_call_fails_the_call_as_unavailable() -> None:
    scheduler = GatedScheduler()
    scheduler.expected = 1
    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as nursery:
            port, server = await start_stoppable_server(nursery, [scheduler])
            async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
                failures: list[rpc.RpcError] = []

                async def beat() -> None:
                    try:
                        await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
                    except rpc.RpcError as error:
                        failures.append(error)

                async with trio.open_nursery() as callers:
                    callers.start_soon(beat)
                    await scheduler.all_waiting.wait()
                    server.cancel()
    [failure] = failures
    assert isinstance(failure, rpc.UnavailableError)
    assert failure.is_transient


def test_the_listening_socket_is_closed_when_serve_stops() -> None:
    async def serve_then_stop() -> int:
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(rpc.serve, [RecordingScheduler()], LOOPBACK, 0)
            nursery.cancel_scope.cancel()
        return port

    port = trio.run(serve_then_stop)
    with socket.socket() as probe:
        probe.bind((LOOPBACK, port))  # free again


@given(st.floats(min_value=1e-9, max_value=1e7))
def test_a_deadline_survives_grpc_timeout_encoding_never_shorter(seconds: float) -> None:
    header = grpc_timeout_header(seconds)
    decoded = grpc_timeout(header)

    assert decoded is not None
    assert len(header) <= 9  # at most 8 digits and a unit
    assert decoded >= seconds * (1 - 1e-9)
    assert decoded <= seconds * 1.00002 + 1e-9


@given(st.text())
def test_a_status_message_survives_percent_encoding(message: str) -> None:
    encoded = percent_encoded(message)

    assert all(0x20 <= byte <= 0x7E for byte in encoded)
    assert unquote_to_bytes(encoded).decode("utf-8") == message


@given(st.binary(max_size=12))
def test_a_malformed_grpc_timeout_is_ignored_not_raised(value: bytes) -> None:
    decoded = grpc_timeout(value)

    assert decoded is None or decoded >= 0


async def test_a_client_that_stops_reading_loses_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Writes are shielded (a write cancelled halfway would corrupt the connection), so a
    # client that grants a large window and then reads nothing must not hold a call, and the
    # server's shutdown, forever: its connection is closed after SEND_STALL_SECONDS.
    monkeypatch.setattr(_server_connection, "SEND_STALL_SECONDS", 0.5)
    reply_bytes = 64 * 1024 * 1024
    with trio.fail_after(TEST_BOUND):
        async with (
            running_server([SizedJobs(), RecordingScheduler()]) as endpoint,
            rpc.connect_channel(endpoint) as channel,
        ):
            stalled = await trio.open_tcp_stream(LOOPBACK, endpoint.port)
            client = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            client.initiate_connection()
            client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
            client.increment_flow_control_window(2**31 - 1 - 65535)
            request = JobIdRequest(job_id=reply_bytes).SerializeToString()
            client.send_headers(
                1,
                [
                    (b":method", b"POST"),
                    (b":scheme", b"http"),
                    (b":path", JobOrchestrationServiceStub.get_job_outputs.route.encode()),
                    (b":authority", b"spider"),
                    (b"content-type", b"application/grpc"),
                    (b"te", b"trailers"),
                ],
            )
            client.send_data(1, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)
            with event_on_warning("spider.rpc") as gave_up:
                await stalled.send_all(client.data_to_send())
                # Read nothing until the server gives up on the connection; then what is
                # buffered drains and the connection ends.
                await gave_up.wait()
            received = 0
            try:
                while data := await stalled.receive_some(1024 * 1024):
                    received += len(data)
            except trio.BrokenResourceError:
                pass  # closed with our request unread: a reset, as good as a close
            await stalled.aclose()
            # Another client is served as ever.
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
    assert received < reply_bytes


class _CallOfAGoneClient:
    """What ``serve``'s dispatcher sees of a call whose client has gone: every write of an
    answer fails as the socket does (broken pipe)."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.timeout: float | None = None
        self.scope = trio.CancelScope()
        self.reset = False
        self.answered = False
        self.peer = (LOOPBACK, 1)
        self.metadata: dict[str, str | bytes] = {}
        self.writes = 0

    async def send_status(self, status: rpc.Status, message: str) -> None:
        self.answered = True
        self.writes += 1
        raise trio.BrokenResourceError("socket connection broken: [Errno 32] Broken pipe")


async def _failing_handler(call: object) -> None:
    raise ValueError("a bug outside any Trio handler")


@pytest.mark.parametrize("route", ["/nobody.Serves/This", "/test.Broken/Handler"])
async def test_an_error_answer_to_a_client_that_has_gone_ends_that_call_alone(
    route: str,
) -> None:
    # An unknown route (UNIMPLEMENTED) and a failure around a handler (INTERNAL) are answered
    # from an except clause; a broken pipe there once escaped and stopped the whole server.
    server = _Server(rpc.ServerConfig(), None)
    server.routes["/test.Broken/Handler"] = _failing_handler
    call = _CallOfAGoneClient(route)

    await server._dispatch(call)  # type: ignore[arg-type]

    assert call.writes == 1


async def test_a_connection_that_fails_unexpectedly_ends_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stands for a flaw in h2 that a peer's bytes reach: the first request on a connection
    # raises inside the reader. That connection ends; serve and the next connection do not.
    start = _server_connection.ServerConnection._start
    failures = [RuntimeError("a flaw the peer's bytes reached")]

    def start_or_fail(self: _server_connection.ServerConnection, *args: object) -> None:
        if failures:
            raise failures.pop()
        start(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_server_connection.ServerConnection, "_start", start_or_fail)
    with trio.fail_after(TEST_BOUND):
        async with (
            running_server([RecordingScheduler()]) as endpoint,
            rpc.connect_channel(endpoint) as channel,
        ):
            with pytest.raises(rpc.UnavailableError):
                await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
            await channel.call(SchedulerServiceStub.heartbeat, HeartbeatRequest())
    assert failures == []
