"""The interpreter's thread switch interval against the latency of a service's hand-offs.

A Spider-py service runs three busy threads: Trio's, the RPC bridge's asyncio loop, and the
worker that runs a database transaction. A thread that returns from a blocking call (SQLite's
``execute`` and ``COMMIT``, a socket) must take the GIL back, and while another thread runs
Python code it waits for that thread to yield it: up to ``sys.getswitchinterval()``, 5 ms by
default. So every statement of a write can wait milliseconds behind the event loop.
``spider.core.process.configure_service_process`` lowers the interval in the services' own
processes; this script measures why, at several intervals, each in a fresh subprocess:

* **commit**: one-row SQLite transactions (WAL, ``synchronous=FULL``, what storage runs) in a
  worker thread, alone and while the main thread runs Python code (a stand-in for a busy
  event loop);
* **rpc**: ``SchedulerService/Heartbeat`` through ``spider.rpc`` with the Trio client and the
  Trio server in one process (every call crosses the bridge four times), 1 and 8 callers.

Prints medians of ``--repeats`` runs and each figure as a ratio to the default interval's.

Run: ``python benchmarks/switch_interval.py [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

from spider import rpc
from spider.proto.common import Void
from spider.proto.scheduler import HeartbeatRequest, SchedulerServiceBase, SchedulerServiceStub

INTERVALS_MS = (5.0, 1.0, 0.5, 0.2)
COMMITS = 200
RPC_CALLS = 1500
LOOPBACK = "127.0.0.1"


def _percentile(samples: list[float], pct: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, len(ordered) * pct // 100)]


def _commit_latencies(directory: Path, busy: bool) -> list[float]:
    connection = sqlite3.connect(
        directory / f"probe-{busy}.db", isolation_level=None, check_same_thread=False
    )
    connection.execute("pragma journal_mode=wal")
    connection.execute("pragma synchronous=full")
    connection.execute("create table t (x integer)")
    latencies: list[float] = []

    def commits() -> None:
        for value in range(COMMITS):
            began = time.perf_counter()
            connection.execute("begin")
            connection.execute("insert into t values (?)", (value,))
            connection.execute("commit")
            latencies.append(time.perf_counter() - began)

    worker = threading.Thread(target=commits)
    worker.start()
    while busy and worker.is_alive():
        sum(range(1000))  # Python code holding the GIL, as a busy event loop does
    worker.join()
    connection.close()
    return latencies


class _Scheduler(SchedulerServiceBase):
    async def heartbeat(self, heartbeat_request: HeartbeatRequest) -> Void:
        return Void()


async def _rpc_figures(callers: int) -> tuple[float, float]:
    """p50 latency (s) and calls/s of heartbeats by ``callers`` concurrent callers."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(rpc.serve, [_Scheduler()], LOOPBACK, 0)
        async with rpc.connect_channel(rpc.Endpoint(LOOPBACK, port)) as channel:
            request = HeartbeatRequest(execution_manager_id=1)
            for _ in range(100):
                await channel.call(SchedulerServiceStub.heartbeat, request)
            latencies: list[float] = []

            async def caller(count: int) -> None:
                for _ in range(count):
                    began = time.perf_counter()
                    await channel.call(SchedulerServiceStub.heartbeat, request)
                    latencies.append(time.perf_counter() - began)

            began = time.perf_counter()
            async with trio.open_nursery() as callers_nursery:
                for _ in range(callers):
                    callers_nursery.start_soon(caller, RPC_CALLS // callers)
            elapsed = time.perf_counter() - began
        nursery.cancel_scope.cancel()
    return statistics.median(latencies), len(latencies) / elapsed


def _measure(interval_ms: float) -> dict[str, float]:
    sys.setswitchinterval(interval_ms / 1000)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for busy in (False, True):
            latencies = _commit_latencies(Path(directory), busy)
            label = "busy" if busy else "idle"
            figures[f"commit {label} p50 ms"] = statistics.median(latencies) * 1e3
            figures[f"commit {label} p90 ms"] = _percentile(latencies, 90) * 1e3
    for callers in (1, 8):
        p50, rate = trio.run(_rpc_figures, callers)
        figures[f"rpc x{callers} p50 ms"] = p50 * 1e3
        figures[f"rpc x{callers} calls/s"] = rate
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per interval (median)")
    parser.add_argument("--measure", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(_measure(args.measure)))
        return
    runs: dict[float, list[dict[str, float]]] = {interval: [] for interval in INTERVALS_MS}
    for repeat in range(args.repeats):
        for interval in INTERVALS_MS:
            print(f"run {repeat + 1}/{args.repeats}: {interval:g} ms", file=sys.stderr, flush=True)
            output = subprocess.run(
                [sys.executable, __file__, "--measure", str(interval)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[interval].append(json.loads(output.splitlines()[-1]))
    medians = {
        interval: {
            key: statistics.median(run[key] for run in interval_runs) for key in interval_runs[0]
        }
        for interval, interval_runs in runs.items()
    }
    keys = list(medians[INTERVALS_MS[0]])
    print(f"\nMedians of {args.repeats} runs; (ratio to the default 5 ms interval)\n")
    print("| switch interval | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    default = medians[INTERVALS_MS[0]]
    for interval in INTERVALS_MS:
        cells = [
            f"{medians[interval][key]:.2f} ({medians[interval][key] / default[key]:.2f})"
            for key in keys
        ]
        print(f"| {interval:g} ms | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
