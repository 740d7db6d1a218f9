"""Unary loopback gRPC latency through ``spider.rpc`` (on the Trio thread), beside plain asyncio
grpclib.

The call is ``SchedulerService/Heartbeat`` (a small request, an empty reply), made ``--calls``
times after a warm-up, by 1 and by 8 concurrent callers sharing one channel (one connection).
Two setups:

* **same process**: client and server in one process. spider.rpc: a Trio server (``spider.rpc.serve``)
  and a Trio client (``Channel.call``). Baseline: the same grpclib server and stub on plain
  asyncio, in a fresh subprocess (so neither run inherits the other's threads or warm state).
* **client only**: the server is a plain asyncio grpclib process of its own, so only the client
  side differs. spider.rpc: ``Channel.call`` from Trio. Baseline: the stub on plain asyncio, in a
  subprocess.

Each cell runs ``--repeats`` times, baseline and spider.rpc alternating so that load from elsewhere on
the machine hits both alike, and reports the median of each metric. Prints a markdown table of
p50/p99 latency (ms), throughput (calls/s), and spider.rpc/baseline ratios.

Run: ``python benchmarks/rpc_latency.py [--calls N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import attrs
import trio
from grpclib.client import Channel
from grpclib.const import Status as GrpcStatus
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import (
    HeartbeatRequest,
    SchedulerServiceBase,
    SchedulerServiceStub,
    scheduler_grpc,
)

LOOPBACK = "127.0.0.1"
WARMUP_CALLS = 200
CALLERS = (1, 8)


@attrs.frozen
class Sample:
    """Latency percentiles and throughput of one run."""

    p50_ms: float
    p99_ms: float
    calls_per_s: float

    @classmethod
    def median(cls, samples: Sequence[Sample]) -> Sample:
        """The median of each metric over repeated runs."""
        return cls(
            p50_ms=statistics.median(sample.p50_ms for sample in samples),
            p99_ms=statistics.median(sample.p99_ms for sample in samples),
            calls_per_s=statistics.median(sample.calls_per_s for sample in samples),
        )

    @classmethod
    def of(cls, latencies: list[float], elapsed: float) -> Sample:
        ordered = sorted(latencies)
        return cls(
            p50_ms=ordered[len(ordered) // 2] * 1e3,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
            calls_per_s=len(ordered) / elapsed,
        )


class AsyncioScheduler(scheduler_grpc.SchedulerServiceBase):
    """grpclib's own generated base: stream-level handlers on plain asyncio."""

    async def NextTask(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        raise GRPCError(GrpcStatus.UNIMPLEMENTED)

    async def Heartbeat(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        await stream.recv_message()
        await stream.send_message(Void())

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:  # noqa: N802 (grpclib's name)
        raise GRPCError(GrpcStatus.UNIMPLEMENTED)


# ---- plain asyncio (run in subprocesses) ------------------------------------------------------


async def _asyncio_calls(port: int, callers: int, calls: int) -> Sample:
    channel = Channel(LOOPBACK, port)
    stub = scheduler_grpc.SchedulerServiceStub(channel)
    try:
        for _ in range(WARMUP_CALLS):
            await stub.Heartbeat(HeartbeatRequest(execution_manager_id=1), timeout=10)
        latencies: list[float] = []

        async def caller(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                await stub.Heartbeat(HeartbeatRequest(execution_manager_id=1), timeout=10)
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
        return Sample.of(latencies, time.perf_counter() - began)
    finally:
        channel.close()


async def _start_asyncio_server() -> tuple[Server, int]:
    # Bind the socket ourselves, as spider.rpc.serve does: grpclib has no public way to tell
    # which port it picked. grpclib sets TCP_NODELAY only on sockets whose proto is TCP.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind((LOOPBACK, 0))
    server = Server([AsyncioScheduler()])
    await server.start(sock=listener)
    return server, int(listener.getsockname()[1])


async def _asyncio_pair(callers: int, calls: int) -> Sample:
    server, port = await _start_asyncio_server()
    try:
        return await _asyncio_calls(port, callers, calls)
    finally:
        server.close()
        await server.wait_closed()


async def _asyncio_server() -> None:
    server, port = await _start_asyncio_server()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    # Serve until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()


# ---- through spider.rpc (this process) ----------------------------------------------------------


async def _spider_rpc_calls(port: int, callers: int, calls: int) -> Sample:
    async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
        for _ in range(WARMUP_CALLS):
            await channel.call(
                SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
            )
        latencies: list[float] = []

        async def caller(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                await channel.call(
                    SchedulerServiceStub.heartbeat, HeartbeatRequest(execution_manager_id=1)
                )
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(callers):
                nursery.start_soon(caller, calls // callers)
        return Sample.of(latencies, time.perf_counter() - began)


class TrioScheduler(SchedulerServiceBase):
    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        return Void()


async def _spider_rpc_pair(callers: int, calls: int) -> Sample:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(rpc.serve, [TrioScheduler()], LOOPBACK, 0)
        sample = await _spider_rpc_calls(port, callers, calls)
        nursery.cancel_scope.cancel()
    return sample


async def _spider_rpc_client(port: int, callers: int, calls: int) -> Sample:
    return await _spider_rpc_calls(port, callers, calls)


def _run_trio(fn: Callable[..., Awaitable[Sample]], *args: int) -> Sample:
    return trio.run(fn, *args)


# ---- orchestration --------------------------------------------------------------------------


def _subprocess_sample(role: str, *args: str) -> Sample:
    output = subprocess.run(
        [sys.executable, __file__, "--role", role, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Sample(**json.loads(output))


def _row(setup: str, callers: int, baseline: Sample, spider_rpc: Sample) -> str:
    return (
        f"| {setup} | {callers} | {baseline.p50_ms:.3f} | {baseline.p99_ms:.3f} | "
        f"{spider_rpc.p50_ms:.3f} | {spider_rpc.p99_ms:.3f} | {spider_rpc.p50_ms / baseline.p50_ms:.2f} | "
        f"{baseline.calls_per_s:.0f} | {spider_rpc.calls_per_s:.0f} | "
        f"{spider_rpc.calls_per_s / baseline.calls_per_s:.2f} |"
    )


def _alternate(
    repeats: int, baseline: Callable[[], Sample], spider_rpc: Callable[[], Sample]
) -> tuple[Sample, Sample]:
    baselines: list[Sample] = []
    spider_rpcs: list[Sample] = []
    for _ in range(repeats):
        baselines.append(baseline())
        spider_rpcs.append(spider_rpc())
    return Sample.median(baselines), Sample.median(spider_rpcs)


def _compare(calls: int, repeats: int) -> None:
    rows: list[str] = []
    for callers in CALLERS:
        baseline, spider_rpc = _alternate(
            repeats,
            partial(_subprocess_sample, "asyncio-pair", str(callers), str(calls)),
            partial(_run_trio, _spider_rpc_pair, callers, calls),
        )
        rows.append(_row("same process", callers, baseline, spider_rpc))

    with subprocess.Popen(
        [sys.executable, __file__, "--role", "asyncio-server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdout is not None
        assert server.stdin is not None
        port = int(server.stdout.readline())
        try:
            for callers in CALLERS:
                baseline, spider_rpc = _alternate(
                    repeats,
                    partial(
                        _subprocess_sample, "asyncio-client", str(callers), str(calls), str(port)
                    ),
                    partial(_run_trio, _spider_rpc_client, port, callers, calls),
                )
                rows.append(_row("client only", callers, baseline, spider_rpc))
        finally:
            server.stdin.close()

    sys.stdout.write(
        f"Unary loopback RPC latency: {calls} calls per run, median of {repeats} runs "
        "(ms; ratio = spider.rpc / asyncio)\n\n"
        "| setup | callers | asyncio p50 | asyncio p99 | spider.rpc p50 | spider.rpc p99 | p50 ratio "
        "| asyncio calls/s | spider.rpc calls/s | throughput ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the comparison, or one subprocess role of it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--role", choices=["asyncio-pair", "asyncio-client", "asyncio-server"])
    parser.add_argument("role_args", nargs="*", type=int)
    args = parser.parse_args(argv)
    if args.role is None:
        _compare(args.calls, args.repeats)
        return
    if args.role == "asyncio-server":
        asyncio.run(_asyncio_server())
        return
    if args.role == "asyncio-pair":
        callers, calls = args.role_args
        sample = asyncio.run(_asyncio_pair(callers, calls))
    else:
        callers, calls, port = args.role_args
        sample = asyncio.run(_asyncio_calls(port, callers, calls))
    sys.stdout.write(json.dumps(attrs.asdict(sample)) + "\n")


if __name__ == "__main__":
    main()
