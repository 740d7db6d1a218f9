"""Run one task of a TDL package in a real executor subprocess and print its outputs.

    python -m spider.executor.run_task --package-dir examples/packages demo demo::fibonacci 25

``--package-dir`` may be given several times: the directories are searched in order, as the
execution manager's are.

Arguments are Python literals (``25``, ``2.5``, ``b'bytes'``, ``[1, 2]``), one per task input.
The package is also imported in this process to read the task's signature, so its load hooks
run twice. Useful for trying a package out before submitting jobs that use it.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.core.logging import LEVEL_ENV
from spider.core.task_context import TaskContext
from spider.core.task_id import TaskId
from spider.core.wire import decode_frame, encode_frame
from spider.executor.process import ExecutorConfig, ExecutorProcess
from spider.executor.protocol import Execute, Failure, Success
from spider.tdl import TdlError, load_package, value_codec


class UsageError(Exception):
    """A bad command line; the message says what to fix."""


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spider.executor.run_task",
        description="Run one task of a TDL package in a real executor and print its outputs.",
    )
    parser.add_argument(
        "--package-dir",
        type=Path,
        action="append",
        required=True,
        help="directory of packages; repeat it for several, searched in order",
    )
    parser.add_argument("package", help="package name (a directory under a --package-dir)")
    parser.add_argument("task", help="registered task name, e.g. demo::fibonacci")
    parser.add_argument("inputs", nargs="*", help="one Python literal per task input")
    return parser.parse_args(argv)


def _encode_inputs(
    package_dir: Sequence[Path], package: str, task: str, literals: Sequence[str]
) -> bytes:
    try:
        definition = load_package(package_dir, package).tasks.get(task)
    except TdlError as exc:
        raise UsageError(str(exc)) from exc
    if definition is None:
        raise UsageError(f"package {package!r} has no task {task!r}")
    signature = definition.signature
    if len(literals) != len(signature.input_names):
        names = ", ".join(signature.input_names) or "none"
        raise UsageError(f"{task} takes {len(signature.input_names)} inputs ({names})")
    payloads = []
    for name, annotation, literal in zip(
        signature.input_names, signature.input_annotations, literals, strict=True
    ):
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError) as exc:
            raise UsageError(f"input {name!r}: {literal!r} is not a Python literal") from exc
        try:
            payloads.append(value_codec(annotation).encode(value, where=f"input {name!r}"))
        except TdlError as exc:
            raise UsageError(str(exc)) from exc
    return encode_frame(payloads)


def _decode_outputs(
    package_dir: Sequence[Path], package: str, task: str, frame: bytes
) -> list[Any]:
    signature = load_package(package_dir, package).tasks[task].signature
    payloads = decode_frame(frame, expected=len(signature.output_annotations))
    return [
        value_codec(annotation).decode(payload)
        for annotation, payload in zip(signature.output_annotations, payloads, strict=True)
    ]


async def _run(args: argparse.Namespace) -> int:
    raw_inputs = _encode_inputs(args.package_dir, args.package, args.task, args.inputs)
    context = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(1))
    # Only the executor's warnings are interesting here, unless the user asks for more.
    env = {LEVEL_ENV: os.environ.get(LEVEL_ENV, "WARNING")}
    executor = await ExecutorProcess.start(ExecutorConfig(package_dir=args.package_dir, env=env))
    try:
        async with trio.open_nursery() as nursery:
            # The executor logs to stderr; pass it through so the user sees it.
            nursery.start_soon(_copy_stderr, executor)
            started = time.perf_counter()
            outcome = await executor.execute(
                Execute(args.package, args.task, context.encode(), raw_inputs)
            )
            round_trip_ms = (time.perf_counter() - started) * 1000
            await executor.aclose()
    finally:
        with trio.move_on_after(5, shield=True):
            await executor.aclose()
    if isinstance(outcome, Failure):
        print(outcome.traceback or "", end="", file=sys.stderr)
        print(f"task failed ({outcome.kind}): {outcome.message}", file=sys.stderr)
        return 1
    if not isinstance(outcome, Success):
        print(f"task failed: {outcome}", file=sys.stderr)
        return 1
    for value in _decode_outputs(args.package_dir, args.package, args.task, outcome.outputs):
        print(repr(value))
    print(
        f"({outcome.elapsed_us} µs in the executor, {round_trip_ms:.2f} ms round trip)",
        file=sys.stderr,
    )
    return 0


async def _copy_stderr(executor: ExecutorProcess) -> None:
    assert executor.stderr is not None  # capture_stderr is on by default
    async for chunk in executor.stderr:
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return trio.run(_run, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
