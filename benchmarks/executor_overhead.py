"""Overhead of one task round trip through a warm executor, against a raw echo baseline.

Reproduces Spider's overhead instrument (``overhead_instrument.rs``): ``sleep_and_echo`` with 100
path-like strings and a 50 µs sleep, one warm-up call, then timed calls through the Trio
``ExecutorProcess``. Reports four metrics (µs) as a markdown table:

* E2E (parent): wall clock around ``ExecutorProcess.execute``;
* Executor elapsed: the executor's own ``elapsed_us`` (package lookup + task);
* Executor internal: elapsed minus the 50 µs sleep, clamped at 0;
* IPC overhead: E2E minus elapsed, i.e. framing, msgpack and pipes on both sides.

The baselines are children that echo the same request frames with the executor's own framing
code (no msgpack, no task) over the same kind of pipes, driven by the same ``FramedPipe`` the
handle uses: one answers at once, one after the same 50 µs sleep as the task (its row subtracts
the sleep it measured), which shows how much of the gap is the cost of waking a parent that
went idle rather than the protocol. Runs alternate in blocks of 50 (executor, echo, sleeping
echo) so that noise from other processes hits all three alike.

Run: ``python benchmarks/executor_overhead.py [--runs N] [--package-dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import ormsgpack
import trio

from spider.core import JobId, ResourceGroupId, TaskContext, TaskId, TaskInstanceId
from spider.core.wire import decode_frame, encode_frame
from spider.executor import Execute, ExecutorConfig, ExecutorProcess, FramedPipe, Success
from spider.executor.protocol import DEFAULT_MAX_FRAME_BYTES, encode_request, frame

PACKAGE = "integration_test_tasks"
TASK = "sleep_and_echo"
SLEEP_US = 50
ITEM_COUNT = 100
BLOCK = 50
REPO_ROOT = Path(__file__).resolve().parent.parent

# The baseline child: the executor's own frame reader and writer echoing bodies back unchanged,
# optionally after sleeping like the task does. It prefixes its reply with the microseconds it
# spent between reading and writing, so its "IPC" can be computed as for the executor.
ECHO_CHILD = """
import struct, time
from executor_bin._channel import FrameChannel
channel = FrameChannel(0, 1, {limit})
sleep_s = {sleep_us} / 1e6
while (body := channel.read_frame()) is not None:
    started = time.perf_counter_ns()
    if sleep_s:
        time.sleep(sleep_s)
    elapsed_us = (time.perf_counter_ns() - started) // 1000
    channel.write_frame(struct.pack(">Q", elapsed_us) + body)
"""


def percentile(sorted_samples: Sequence[float], pct: int) -> float:
    """Upstream's percentile: the sample at index ``count * pct / 100``, clamped to the last."""
    index = min(len(sorted_samples) * pct // 100, len(sorted_samples) - 1)
    return sorted_samples[index]


def summarize(samples: Sequence[float]) -> tuple[float, float, float, float]:
    """``(avg, p50, p95, p99)`` of ``samples``."""
    ordered = sorted(samples)
    return (
        sum(ordered) / len(ordered),
        percentile(ordered, 50),
        percentile(ordered, 95),
        percentile(ordered, 99),
    )


def build_trivial_request(request: Execute) -> Execute:
    """``echo_bytes`` of a payload as long as ``request``'s: the same IPC, next to no task."""
    payload = b"x" * len(decode_frame(request.raw_inputs)[0])
    inputs = encode_frame([ormsgpack.packb(payload)])
    return Execute(PACKAGE, "echo_bytes", request.raw_ctx, inputs)


def build_request() -> Execute:
    """``sleep_and_echo`` with 100 ``/var/log/file_0000_00000.log``-style paths."""
    items = [f"/var/log/file_{i:04d}_{i * 7919 % 100000:05d}.log" for i in range(ITEM_COUNT)]
    ctx = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(1))
    return Execute(PACKAGE, TASK, ctx.encode(), encode_frame([ormsgpack.packb(items)]))


@attrs.define(eq=False)
class EchoChild:
    """The baseline: a child echoing frames over the same pipes and the same ``FramedPipe``."""

    process: trio.Process
    pipe: FramedPipe

    @classmethod
    async def start(cls, sleep_us: int) -> EchoChild:
        """Spawn an echo child that sleeps ``sleep_us`` before each answer."""
        code = ECHO_CHILD.format(limit=DEFAULT_MAX_FRAME_BYTES, sleep_us=sleep_us)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        return cls(process, FramedPipe.of_process(process, DEFAULT_MAX_FRAME_BYTES))

    async def round_trip(self, data: bytes) -> tuple[int, int]:
        """``(round_trip_ns, child_elapsed_us)`` for one frame; checks the echo."""
        started = time.perf_counter_ns()
        await self.pipe.send_frame(data)
        echoed = await self.pipe.receive_frame()
        round_trip_ns = time.perf_counter_ns() - started
        if echoed is None or echoed[8:] != data[4:]:
            raise SystemExit("the echo child returned a different frame")
        return round_trip_ns, int.from_bytes(echoed[:8], "big")

    async def aclose(self) -> None:
        """End-of-file on its stdin ends the echo loop; reap it."""
        with trio.move_on_after(5, shield=True):
            assert self.process.stdin is not None
            assert self.process.stdout is not None
            await self.process.stdin.aclose()
            await self.process.wait()
            await self.process.stdout.aclose()


@attrs.define
class Samples:
    """Per-run measurements, in µs."""

    e2e: list[float] = attrs.field(factory=list)
    elapsed: list[float] = attrs.field(factory=list)
    trivial_ipc: list[float] = attrs.field(factory=list)
    echo: list[float] = attrs.field(factory=list)
    sleeping_echo_ipc: list[float] = attrs.field(factory=list)

    @property
    def ipc(self) -> list[float]:
        """E2E minus the executor's elapsed time, clamped at 0."""
        return [max(0.0, e2e - spent) for e2e, spent in zip(self.e2e, self.elapsed, strict=True)]


async def timed_execute(executor: ExecutorProcess, request: Execute) -> tuple[float, float]:
    """``(e2e_us, elapsed_us)`` of one successful task."""
    started = time.perf_counter_ns()
    outcome = await executor.execute(request)
    e2e_ns = time.perf_counter_ns() - started
    if not isinstance(outcome, Success):
        raise SystemExit(f"run failed: {outcome}")
    return e2e_ns / 1000, float(outcome.elapsed_us)


async def measure(package_dir: Path, request: Execute, runs: int) -> Samples:
    """Alternate blocks of executor runs and baseline round trips.

    Blocks, not single runs: each process stays as warm as in a run of consecutive tasks, while
    noise from other processes still hits every series alike.
    """
    data = frame(encode_request(request), DEFAULT_MAX_FRAME_BYTES)
    trivial = build_trivial_request(request)
    config = ExecutorConfig(package_dir=package_dir, capture_stderr=False)
    samples = Samples()
    echo = await EchoChild.start(sleep_us=0)
    sleeping_echo = await EchoChild.start(sleep_us=SLEEP_US)
    try:
        async with await ExecutorProcess.start(config) as executor:
            warm_up = await executor.execute(request)
            if not isinstance(warm_up, Success):
                raise SystemExit(f"warm-up failed: {warm_up}")
            if decode_frame(warm_up.outputs) != decode_frame(request.raw_inputs):
                raise SystemExit("warm-up returned different items than it was given")
            await timed_execute(executor, trivial)
            await echo.round_trip(data)
            await sleeping_echo.round_trip(data)
            for block_start in range(0, runs, BLOCK):
                block = range(min(BLOCK, runs - block_start))
                for _ in block:
                    e2e, elapsed = await timed_execute(executor, request)
                    samples.e2e.append(e2e)
                    samples.elapsed.append(elapsed)
                for _ in block:
                    e2e, elapsed = await timed_execute(executor, trivial)
                    samples.trivial_ipc.append(max(0.0, e2e - elapsed))
                for _ in block:
                    round_trip_ns, _ = await echo.round_trip(data)
                    samples.echo.append(round_trip_ns / 1000)
                for _ in block:
                    round_trip_ns, slept_us = await sleeping_echo.round_trip(data)
                    samples.sleeping_echo_ipc.append(max(0.0, round_trip_ns / 1000 - slept_us))
    finally:
        await echo.aclose()
        await sleeping_echo.aclose()
    return samples


def row(name: str, samples: Sequence[float]) -> str:
    """One markdown table row: name, avg, p50, p95, p99."""
    return f"| {name} | " + " | ".join(f"{value:.2f}" for value in summarize(samples)) + " |"


async def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="timed runs (at least 1000)")
    parser.add_argument(
        "--package-dir",
        type=Path,
        default=REPO_ROOT / "tests" / "packages",
        help="the directory holding integration_test_tasks",
    )
    parser.add_argument(
        "--pin-cpu",
        type=int,
        default=None,
        help="run this process and its children on this one CPU (Linux); on VMs, cross-CPU "
        "wake-ups of an idle parent can dominate the IPC figure",
    )
    args = parser.parse_args(argv)
    if args.runs < 1000:
        parser.error("--runs must be at least 1000")
    if args.pin_cpu is not None:
        os.sched_setaffinity(0, {args.pin_cpu})  # children inherit the affinity
    samples = await measure(args.package_dir, build_request(), args.runs)
    internal = [max(0.0, value - SLEEP_US) for value in samples.elapsed]
    pinned = "" if args.pin_cpu is None else f", pinned to CPU {args.pin_cpu}"
    print(
        f"## Executor overhead ({args.runs} runs, {ITEM_COUNT} items, {SLEEP_US} µs sleep{pinned})"
    )
    print()
    print("| Metric (µs) | Avg | P50 | P95 | P99 |")
    print("|---|---|---|---|---|")
    print(row("E2E (parent)", samples.e2e))
    print(row("Executor elapsed", samples.elapsed))
    print(row(f"Executor internal (elapsed - {SLEEP_US} µs)", internal))
    print(row("IPC overhead (E2E - elapsed)", samples.ipc))
    print()
    print("| Comparison (µs) | Avg | P50 | P95 | P99 |")
    print("|---|---|---|---|---|")
    print(row("Baseline: echo child round trip", samples.echo))
    print(
        row(
            f"Echo child after a {SLEEP_US} µs sleep, round trip - sleep", samples.sleeping_echo_ipc
        )
    )
    print(row("IPC overhead of a trivial task (echo_bytes, same size)", samples.trivial_ipc))
    print()
    echo_p50 = summarize(samples.echo)[1]
    ipc_p50 = summarize(samples.ipc)[1]
    print(f"- IPC overhead p50 / echo p50: {ipc_p50 / echo_p50:.2f} (goal < 2)")
    print(f"- trivial-task IPC p50 / echo p50: {summarize(samples.trivial_ipc)[1] / echo_p50:.2f}")
    print(
        "- IPC overhead p50 / sleeping-echo p50: "
        f"{ipc_p50 / summarize(samples.sleeping_echo_ipc)[1]:.2f} (a parent that waited idle "
        "wakes up slower, whoever it waits for)"
    )
    print("- upstream's Rust executor (PR #325): IPC overhead p50 315.64 µs; goal < 100 µs")


if __name__ == "__main__":
    trio.run(main)
