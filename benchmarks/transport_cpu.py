"""Server CPU per unary call: ``spider.rpc`` (grpclib behind the Trio bridge) beside grpcio.

The question (docs/rpc.md, "Which transport"): would moving ``spider.rpc`` from grpclib to
grpcio's C core cut the server's cost per call by a wide margin? Every server below answers
``SchedulerService/Heartbeat`` (a small request, an empty reply) and runs in a process of its
own; one load generator (grpcio's blocking stub, 1 then 8 threads on one channel) drives each in
turn, and the server process's CPU time (``/proc``, Linux) is divided by the calls it answered.

Servers, the first being what Spider-py runs today:

* ``spider.rpc``: ``spider.rpc.serve`` on the bridge (grpclib in the asyncio thread, the handler
  a Trio task).
* ``spider.rpc + credential``: the same, with the cluster credential checked on every call
  (docs/security.md) and sent by the load generator as call metadata: what the check costs.
* ``grpclib alone``: grpclib on plain asyncio, the handler on asyncio (no Trio): what the bridge
  hop costs on top of grpclib.
* ``grpcio aio + Trio``: grpcio's asyncio server in a thread, the handler a Trio task reached the
  way the bridge reaches it (``run_sync_soon`` there, ``call_soon_threadsafe`` back).
* ``grpcio threads + Trio``: grpcio's thread-pool server, the handler run with
  ``trio.from_thread.run``.
* ``grpcio aio alone``: grpcio's asyncio server, the handler on asyncio (no Trio): the floor a
  switch could reach if Trio were out of the picture.

Servers run in turn, ``--repeats`` times, so load from elsewhere on the machine hits them alike;
the table shows medians and each server's CPU per call as a ratio to ``spider.rpc``'s.

Run: ``python benchmarks/transport_cpu.py [--calls N] [--repeats R] [--servers A,B]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import attrs
import grpc
import grpc.aio
import grpclib.server
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
from spider.rpc.auth import CLUSTER_TOKEN_HEADER, ClusterAuth

LOOPBACK = "127.0.0.1"
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
        async with rpc.open_rpc_bridge(), trio.open_nursery() as nursery:
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


SERVE: dict[str, Callable[[], None]] = {
    "spider.rpc": _serve_spider_rpc,
    CREDENTIAL: _serve_spider_rpc_with_credential,
    "grpclib alone": _serve_grpclib_alone,
    "grpcio aio + Trio": _serve_grpcio_aio_trio,
    "grpcio threads + Trio": _serve_grpcio_threads_trio,
    "grpcio aio alone": _serve_grpcio_aio_alone,
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
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve]()
        return
    servers = [name for name in SERVERS if name in args.servers.split(",")]
    if "spider.rpc" not in servers:
        parser.error("--servers must include spider.rpc, the baseline of the ratios")
    samples: dict[tuple[str, int], list[Sample]] = {}
    for repeat in range(args.repeats):
        for name in servers:
            print(f"run {repeat + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            metadata = ((CLUSTER_TOKEN_HEADER, TOKEN),) if name == CREDENTIAL else ()
            with _server(name) as (port, cpu_seconds):
                for callers in CALLERS:
                    sample = _load(port, callers, args.calls, cpu_seconds, metadata)
                    samples.setdefault((name, callers), []).append(sample)
    medians = {cell: _median(cell_samples) for cell, cell_samples in samples.items()}
    print(
        f"\nServer CPU per unary call ({args.calls} calls per cell, median of {args.repeats}; "
        f"ratio = CPU per call / spider.rpc's)\n"
    )
    header = " | ".join(
        f"{callers} caller(s): CPU µs/call | ratio | p50 ms | calls/s" for callers in CALLERS
    )
    print(f"| server | {header} |")
    print("|---|" + "---|" * 4 * len(CALLERS))
    for name in servers:
        cells = []
        for callers in CALLERS:
            sample = medians[name, callers]
            ratio = sample.cpu_us / medians["spider.rpc", callers].cpu_us
            cells.append(
                f"{sample.cpu_us:.0f} | {ratio:.2f} | {sample.p50_ms:.2f} | {sample.calls_per_s:.0f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
