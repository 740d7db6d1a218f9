"""CPU per unary call: ``spider.rpc`` beside grpclib, grpcio and a bare ``h2`` prototype.

The question (docs/rpc.md, "Which transport"): which transport costs a server, and a client,
the least CPU per call when the handlers and callers are Trio code? It first compared grpclib
behind an asyncio thread with grpcio's C core, then with HTTP/2 parsed by ``h2`` on the Trio
thread, which ``spider.rpc`` now does. Every server below answers
``SchedulerService/Heartbeat`` (a small request, an empty reply) and runs in a process of its
own; one load generator (grpcio's blocking stub, 1 then 8 threads on one channel) drives each in
turn, and the server process's CPU time (``/proc``, Linux) is divided by the calls it answered.

Servers, the first being what Spider-py runs today:

* ``spider.rpc``: ``spider.rpc.serve`` (HTTP/2 by ``h2`` on the Trio thread, the handler a Trio
  task).
* ``spider.rpc + credential``: the same, with the cluster credential checked on every call
  (docs/security.md) and sent by the load generator as call metadata: what the check costs.
* ``grpclib alone``: grpclib on plain asyncio, the handler on asyncio (no Trio).
* ``grpcio aio + Trio``: grpcio's asyncio server in a thread, the handler a Trio task reached
  across threads (``run_sync_soon`` there, ``call_soon_threadsafe`` back).
* ``grpcio threads + Trio``: grpcio's thread-pool server, the handler run with
  ``trio.from_thread.run``.
* ``grpcio aio alone``: grpcio's asyncio server, the handler on asyncio (no Trio): the floor a
  switch could reach if Trio were out of the picture.
* ``h2 on Trio``: HTTP/2 parsed by the ``h2`` library (what grpclib uses) on the Trio thread
  itself, the handler a Trio task in the connection's nursery: no asyncio, no thread hop. It
  is a prototype that answers only this one method with none of a server's checks (deadlines,
  metadata, limits), so it is the floor of ``spider.rpc``'s transport.
* ``frames on Trio``: the same with no ``h2`` at all: HTTP/2 frames cut and built by hand,
  header blocks by ``hpack``. Also a prototype with none of a server's checks: the floor of a
  hand-written framing, the lever measured in docs/rpc.md ("A hand-written framing").

Servers run in turn, ``--repeats`` times, so load from elsewhere on the machine hits them alike;
the table shows medians and each server's CPU per call as a ratio to ``spider.rpc``'s.

A second table asks the same of the calling side, since every Spider-py service is a client
too: each client below runs in a process of its own, makes its calls from 1 then 8 Trio tasks
against grpcio's thread-pool server (C core, in another process), and its process's CPU is
divided by its calls.

* ``spider.rpc``: ``Channel.call`` (HTTP/2 by ``h2`` on the Trio thread).
* ``h2 on Trio``: a prototype client on the ``h2`` library on the Trio thread, one connection,
  no deadline or error handling: the floor of a Trio-native channel.

Run: ``python benchmarks/transport_cpu.py [--calls N] [--repeats R] [--servers A,B]
[--clients A,B]`` (``--clients ""`` skips the second table).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import attrs
import grpc
import grpc.aio
import grpclib.server
import h2.config
import h2.connection
import h2.events
import hpack
import trio
from grpclib.server import Stream

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import (
    HeartbeatRequest,
    SchedulerServiceBase,
    SchedulerServiceStub,
    scheduler_grpc,
)
from spider.rpc._frames import PREFACE, FrameType, frame
from spider.rpc.auth import CLUSTER_TOKEN_HEADER, ClusterAuth

LOOPBACK = "127.0.0.1"
CLIENTS = ("spider.rpc", "h2 on Trio")
WARMUP_CALLS = 300
CALLERS = (1, 8)
SERVICE = "scheduler.SchedulerService"
CREDENTIAL = "spider.rpc + credential"
TOKEN = "bench-cluster-token-0123456789abcdef"
SERVERS = (
    "spider.rpc",
    CREDENTIAL,
    "grpclib alone",
    "grpcio aio + Trio",
    "grpcio threads + Trio",
    "grpcio aio alone",
    "h2 on Trio",
    "frames on Trio",
)


def _grpcio_handler(behaviour: Callable[..., Any]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Heartbeat": grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=HeartbeatRequest.FromString,
                response_serializer=Void.SerializeToString,
            )
        },
    )


def _announce(port: int) -> None:
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


# ---- the servers (each runs in a subprocess until killed) -------------------------------------


class _TrioScheduler(SchedulerServiceBase):
    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        return Void()


async def _trio_heartbeat(request: HeartbeatRequest) -> Void:
    return Void()


def _serve_spider_rpc(config: rpc.ServerConfig | None = None) -> None:
    async def main() -> None:
        serve = functools.partial(rpc.serve, config=config or rpc.ServerConfig())
        async with trio.open_nursery() as nursery:
            _announce(await nursery.start(serve, [_TrioScheduler()], LOOPBACK, 0))

    trio.run(main)


def _serve_spider_rpc_with_credential() -> None:
    _serve_spider_rpc(rpc.ServerConfig(auth=ClusterAuth(TOKEN)))


class _AsyncioScheduler(scheduler_grpc.SchedulerServiceBase):
    async def NextTask(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        raise NotImplementedError

    async def Heartbeat(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        await stream.recv_message()
        await stream.send_message(Void())

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        raise NotImplementedError


def _serve_grpclib_alone() -> None:
    async def main() -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind((LOOPBACK, 0))
        server = grpclib.server.Server([_AsyncioScheduler()])
        await server.start(sock=listener)
        _announce(listener.getsockname()[1])
        await server.wait_closed()

    asyncio.run(main())


def _serve_grpcio_aio_alone() -> None:
    async def heartbeat(request: HeartbeatRequest, context: object) -> Void:
        return Void()

    async def main() -> None:
        server = grpc.aio.server(handlers=[_grpcio_handler(heartbeat)])
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        await server.start()
        _announce(port)
        await server.wait_for_termination()

    asyncio.run(main())


def _serve_grpcio_aio_trio() -> None:
    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        loop = asyncio.SelectorEventLoop()
        bound: list[int] = []
        ready = threading.Event()

        async def heartbeat(request: HeartbeatRequest, context: object) -> Void:
            answer: asyncio.Future[Void] = loop.create_future()

            def start() -> None:  # Trio thread
                async def handle() -> None:
                    reply = await _trio_heartbeat(request)
                    loop.call_soon_threadsafe(answer.set_result, reply)

                trio.lowlevel.spawn_system_task(handle)

            token.run_sync_soon(start)
            return await answer

        async def serve() -> None:
            server = grpc.aio.server(handlers=[_grpcio_handler(heartbeat)])
            bound.append(server.add_insecure_port(f"{LOOPBACK}:0"))
            await server.start()
            ready.set()
            await server.wait_for_termination()

        threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
        await trio.to_thread.run_sync(ready.wait)
        _announce(bound[0])
        await trio.sleep_forever()

    trio.run(main)


def _serve_grpcio_threads_trio() -> None:
    async def main() -> None:
        token = trio.lowlevel.current_trio_token()

        def heartbeat(request: HeartbeatRequest, context: object) -> Void:
            return trio.from_thread.run(_trio_heartbeat, request, trio_token=token)

        server = grpc.server(ThreadPoolExecutor(16), handlers=[_grpcio_handler(heartbeat)])
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        server.start()
        _announce(port)
        await trio.sleep_forever()

    trio.run(main)


async def _h2_connection(stream: trio.SocketStream) -> None:
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    connection.initiate_connection()
    sending = trio.Lock()
    bodies: dict[int, bytearray] = {}

    async def flush() -> None:
        async with sending:
            if pending := connection.data_to_send():
                await stream.send_all(pending)

    async def answer(stream_id: int, body: bytes) -> None:
        reply = await _trio_heartbeat(HeartbeatRequest.FromString(body[5:]))
        payload = reply.SerializeToString()
        connection.send_headers(
            stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")]
        )
        connection.send_data(stream_id, b"\0" + len(payload).to_bytes(4, "big") + payload)
        connection.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        await flush()

    async with stream, trio.open_nursery() as nursery:
        await flush()
        while data := await stream.receive_some(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    bodies[event.stream_id] = bytearray()
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    nursery.start_soon(answer, event.stream_id, bytes(bodies.pop(event.stream_id)))
            await flush()


def _serve_on_trio(connection: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
    """Serve each loopback connection with ``connection``, on Trio, until killed."""

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
        _announce(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(connection, listeners)

    trio.run(main)


# The frame types and flags the prototype reads; the frame layout is spider.rpc._frames'.
_DATA, _HEADERS, _SETTINGS, _PING, _WINDOW_UPDATE, _CONTINUATION = (
    FrameType.DATA,
    FrameType.HEADERS,
    FrameType.SETTINGS,
    FrameType.PING,
    FrameType.WINDOW_UPDATE,
    FrameType.CONTINUATION,
)
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20


async def _framed_connection(stream: trio.SocketStream) -> None:
    """The ``frames on Trio`` prototype: HTTP/2 frames cut and built by hand, header blocks by
    ``hpack``, no ``h2`` state machine. It does what a unary call of a well-behaved peer needs
    (settings and their acknowledgement, pings, the connection window, headers with
    continuations, data, padding) and none of the checks a server owes a hostile one: the floor
    of a hand-written framing, not a server."""
    decoder, encoder = hpack.Decoder(), hpack.Encoder()
    sending = trio.Lock()
    out = bytearray(frame(_SETTINGS, 0, 0))
    bodies: dict[int, bytearray] = {}
    unacknowledged = 0
    buffer = b""
    block: list[bytes] = []

    async def flush() -> None:
        nonlocal out
        async with sending:
            if out:
                pending, out = bytes(out), bytearray()
                await stream.send_all(pending)

    async def answer(stream_id: int, body: bytes) -> None:
        reply = await _trio_heartbeat(HeartbeatRequest.FromString(body[5:]))
        payload = reply.SerializeToString()
        headers = encoder.encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
        trailers = encoder.encode([(b"grpc-status", b"0")])
        out.extend(
            frame(_HEADERS, _END_HEADERS, stream_id, headers)
            + frame(_DATA, 0, stream_id, b"\0" + len(payload).to_bytes(4, "big") + payload)
            + frame(_HEADERS, _END_HEADERS | _END_STREAM, stream_id, trailers)
        )
        await flush()

    async with stream, trio.open_nursery() as nursery:
        await flush()
        while data := await stream.receive_some(65536):
            buffer += data
            if buffer.startswith(PREFACE):
                buffer = buffer[len(PREFACE) :]
            at = 0
            while len(buffer) - at >= 9:
                length = int.from_bytes(buffer[at : at + 3], "big")
                end = at + 9 + length
                if end > len(buffer):
                    break
                kind, flags = buffer[at + 3], buffer[at + 4]
                stream_id = int.from_bytes(buffer[at + 5 : at + 9], "big") & 0x7FFFFFFF
                payload = buffer[at + 9 : end]
                at = end
                if kind in (_DATA, _HEADERS) and flags & _PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                if kind == _DATA:
                    bodies[stream_id] += payload
                    unacknowledged += length
                    if unacknowledged > 32768:
                        out.extend(frame(_WINDOW_UPDATE, 0, 0, unacknowledged.to_bytes(4, "big")))
                        unacknowledged = 0
                    if flags & _END_STREAM:
                        nursery.start_soon(answer, stream_id, bytes(bodies.pop(stream_id)))
                elif kind in (_HEADERS, _CONTINUATION):
                    if kind == _HEADERS:
                        bodies[stream_id] = bytearray()
                        if flags & _PRIORITY:
                            payload = payload[5:]
                    block.append(payload)
                    if flags & _END_HEADERS:
                        decoder.decode(b"".join(block), raw=True)
                        block.clear()
                elif kind == _SETTINGS and not flags & _ACK:
                    out.extend(frame(_SETTINGS, _ACK, 0))
                elif kind == _PING and not flags & _ACK:
                    out.extend(frame(_PING, _ACK, 0, payload))
            buffer = buffer[at:]
            await flush()


# ---- the clients (each runs in a subprocess, against a grpcio server) -------------------------


class _H2TrioChannel:
    """The prototype Trio-native client: one HTTP/2 connection, a reader task, no checks."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._connection.initiate_connection()
        self._sending = trio.Lock()
        self._answered: dict[int, trio.Event] = {}
        self._bodies: dict[int, bytearray] = {}

    async def flush(self) -> None:
        async with self._sending:
            if pending := self._connection.data_to_send():
                await self._stream.send_all(pending)

    async def read(self) -> None:
        while data := await self._stream.receive_some(65536):
            for event in self._connection.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self._bodies[event.stream_id] += event.data
                    self._connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self._answered.pop(event.stream_id).set()
            await self.flush()

    async def heartbeat(self, request: HeartbeatRequest) -> Void:
        stream_id = self._connection.get_next_available_stream_id()
        body = request.SerializeToString()
        self._bodies[stream_id] = bytearray()
        answered = self._answered[stream_id] = trio.Event()
        self._connection.send_headers(
            stream_id,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", SchedulerServiceStub.heartbeat.route.encode()),
                (b":authority", LOOPBACK.encode()),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                (b"grpc-timeout", b"10S"),
            ],
        )
        self._connection.send_data(
            stream_id, b"\0" + len(body).to_bytes(4, "big") + body, end_stream=True
        )
        await self.flush()
        await answered.wait()
        return Void.FromString(bytes(self._bodies.pop(stream_id))[5:])


async def _timed_calls(
    heartbeat: Callable[[HeartbeatRequest], Awaitable[Void]], callers: int, calls: int
) -> Sample:
    request = HeartbeatRequest(execution_manager_id=1)
    for _ in range(WARMUP_CALLS):
        await heartbeat(request)
    latencies: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            await heartbeat(request)
            latencies.append(time.perf_counter() - began)

    cpu_before = time.process_time()
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller, calls // callers)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    latencies.sort()
    return Sample(
        cpu_us=cpu / len(latencies) * 1e6,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        calls_per_s=len(latencies) / elapsed,
    )


async def _spider_rpc_client(port: int, callers: int, calls: int) -> Sample:
    async with (
        rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel,
    ):
        return await _timed_calls(
            functools.partial(channel.call, SchedulerServiceStub.heartbeat, deadline=10),
            callers,
            calls,
        )


async def _h2_trio_client(port: int, callers: int, calls: int) -> Sample:
    channel = _H2TrioChannel(await trio.open_tcp_stream(LOOPBACK, port))
    await channel.flush()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.read)
        sample = await _timed_calls(channel.heartbeat, callers, calls)
        nursery.cancel_scope.cancel()
    return sample


CLIENT: dict[str, Callable[[int, int, int], Awaitable[Sample]]] = {
    "spider.rpc": _spider_rpc_client,
    "h2 on Trio": _h2_trio_client,
}


def _run_client(name: str, port: int, callers: int, calls: int) -> None:
    sample = trio.run(CLIENT[name], port, callers, calls)
    sys.stdout.write(json.dumps(attrs.asdict(sample)) + "\n")


def _client_sample(name: str, port: int, callers: int, calls: int) -> Sample:
    command = [sys.executable, __file__, "--client", name, "--port", str(port)]
    command += ["--callers", str(callers), "--calls", str(calls)]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return Sample(**json.loads(finished.stdout))


SERVE: dict[str, Callable[[], None]] = {
    "spider.rpc": _serve_spider_rpc,
    CREDENTIAL: _serve_spider_rpc_with_credential,
    "grpclib alone": _serve_grpclib_alone,
    "grpcio aio + Trio": _serve_grpcio_aio_trio,
    "grpcio threads + Trio": _serve_grpcio_threads_trio,
    "grpcio aio alone": _serve_grpcio_aio_alone,
    "h2 on Trio": functools.partial(_serve_on_trio, _h2_connection),
    "frames on Trio": functools.partial(_serve_on_trio, _framed_connection),
}


# ---- the load generator (this process) --------------------------------------------------------


@attrs.frozen
class Sample:
    """One server, one caller count: the server's CPU per call, p50 latency, throughput."""

    cpu_us: float
    p50_ms: float
    calls_per_s: float


@contextmanager
def _server(name: str) -> Iterator[tuple[int, Callable[[], float]]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {name!r} server exited before it announced its port")

        def cpu_seconds() -> float:
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        yield int(line), cpu_seconds
    finally:
        process.kill()
        process.wait()


def _load(
    port: int,
    callers: int,
    calls: int,
    cpu_seconds: Callable[[], float],
    metadata: tuple[tuple[str, str], ...] = (),
) -> Sample:
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        heartbeat = channel.unary_unary(
            SchedulerServiceStub.heartbeat.route,
            request_serializer=HeartbeatRequest.SerializeToString,
            response_deserializer=Void.FromString,
        )
        request = HeartbeatRequest(execution_manager_id=1)
        for _ in range(WARMUP_CALLS):
            heartbeat(request, timeout=10, metadata=metadata)
        latencies: list[float] = []

        def caller(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                heartbeat(request, timeout=10, metadata=metadata)
                latencies.append(time.perf_counter() - began)

        threads = [
            threading.Thread(target=caller, args=(calls // callers,)) for _ in range(callers)
        ]
        cpu_before = cpu_seconds()
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds() - cpu_before
    latencies.sort()
    return Sample(
        cpu_us=cpu / len(latencies) * 1e6,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        calls_per_s=len(latencies) / elapsed,
    )


def _median(samples: list[Sample]) -> Sample:
    return Sample(
        cpu_us=statistics.median(sample.cpu_us for sample in samples),
        p50_ms=statistics.median(sample.p50_ms for sample in samples),
        calls_per_s=statistics.median(sample.calls_per_s for sample in samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per cell")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median)")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated subset (default: all)"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated subset (default: all)"
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--callers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve]()
        return
    if args.client:
        _run_client(args.client, args.port, args.callers, args.calls)
        return
    servers = [name for name in SERVERS if name in args.servers.split(",")]
    if "spider.rpc" not in servers:
        parser.error("--servers must include spider.rpc, the baseline of the ratios")
    clients = [name for name in CLIENTS if name in args.clients.split(",")]
    if clients and "spider.rpc" not in clients:
        parser.error("--clients must include spider.rpc, the baseline of the ratios")
    samples: dict[tuple[str, int], list[Sample]] = {}
    for repeat in range(args.repeats):
        for name in servers:
            print(f"run {repeat + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            metadata = ((CLUSTER_TOKEN_HEADER, TOKEN),) if name == CREDENTIAL else ()
            with _server(name) as (port, cpu_seconds):
                for callers in CALLERS:
                    sample = _load(port, callers, args.calls, cpu_seconds, metadata)
                    samples.setdefault((name, callers), []).append(sample)
    _print_table(
        f"Server CPU per unary call ({args.calls} calls per cell, median of {args.repeats}; "
        "ratio = CPU per call / spider.rpc's)",
        "server",
        servers,
        {cell: _median(cell_samples) for cell, cell_samples in samples.items()},
    )
    if clients:
        _client_table(clients, args.calls, args.repeats)


def _print_table(
    title: str, kind: str, names: list[str], medians: dict[tuple[str, int], Sample]
) -> None:
    print(f"\n{title}\n")
    header = " | ".join(
        f"{callers} caller(s): CPU µs/call | ratio | p50 ms | calls/s" for callers in CALLERS
    )
    print(f"| {kind} | {header} |")
    print("|---|" + "---|" * 4 * len(CALLERS))
    for name in names:
        cells = []
        for callers in CALLERS:
            sample = medians[name, callers]
            ratio = sample.cpu_us / medians["spider.rpc", callers].cpu_us
            cells.append(
                f"{sample.cpu_us:.0f} | {ratio:.2f} | {sample.p50_ms:.2f} | {sample.calls_per_s:.0f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


def _client_table(clients: list[str], calls: int, repeats: int) -> None:
    samples: dict[tuple[str, int], list[Sample]] = {}
    with _server("grpcio threads + Trio") as (port, _):
        for repeat in range(repeats):
            for name in clients:
                print(f"run {repeat + 1}/{repeats}: client {name}", file=sys.stderr, flush=True)
                for callers in CALLERS:
                    sample = _client_sample(name, port, callers, calls)
                    samples.setdefault((name, callers), []).append(sample)
    _print_table(
        f"Client CPU per unary call against grpcio's thread-pool server ({calls} calls per "
        f"cell, median of {repeats}; ratio = CPU per call / spider.rpc's)",
        "client",
        clients,
        {cell: _median(cell_samples) for cell, cell_samples in samples.items()},
    )


if __name__ == "__main__":
    main()
