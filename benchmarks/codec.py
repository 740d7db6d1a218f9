"""Build+encode and decode+read of the hot messages: protobuf's ``_pb2`` (upb) against
betterproto, the codec Spider-py used before, in the same run.

The hot messages are the ones every task pays for: ``RegisterTaskInstance`` (request and
response), ``NextTask`` (request with an acknowledgement, response with an assignment),
``ReportTaskSuccess`` (request with a 64-byte output), one ``ReadyTask`` entry, and a
``PollReadyTasksResponse`` of 500 entries. *build+encode* constructs the message from Python
values and serializes it; *decode+read* parses the bytes and reads every field, as a handler
does. The betterproto classes are generated from ``protos/`` into a temporary directory at run
time (``betterproto[compiler]`` is a dev dependency for this only). Both codecs must write the
same bytes; the benchmark checks that before timing.

Prints a markdown table of µs per operation (best of ``--repeats`` runs of ``--number`` calls)
and betterproto/pb2 ratios. Run: ``python benchmarks/codec.py [--number N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf.internal import api_implementation

from spider.proto import common, scheduler, storage

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = b"\x01" * 64
READY_ENTRIES = 500

# One case: how to build+encode with a codec's modules, and how to decode+read bytes.
Build = Callable[[ModuleType, ModuleType, ModuleType], Any]
Encode = Callable[[Any], bytes]
Read = Callable[[Any, bytes], object]
"""Decodes with the module holding the message (``scheduler`` for NextTask*, else ``storage``)."""


def _betterproto_modules(out: Path) -> tuple[ModuleType, ModuleType, ModuleType]:
    """betterproto's classes for common, scheduler and storage, generated into ``out``."""
    package = out / "bp_gen"
    package.mkdir()
    (package / "__init__.py").write_text("")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_betterproto_out={package}",
            "common/common.proto",
            "scheduler/scheduler.proto",
            "storage/storage.proto",
        ],
        cwd=ROOT / "protos",
        env=env,
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(out))
    return (
        importlib.import_module("bp_gen.common"),
        importlib.import_module("bp_gen.scheduler"),
        importlib.import_module("bp_gen.storage"),
    )


def _record(s: ModuleType, betterproto: bool) -> Any:
    # betterproto renames the keyword field `from` to `from_`.
    return s.TaskAssignmentRecord(id=41, **{"from_" if betterproto else "from": 2})


def _cases(betterproto: bool) -> dict[str, tuple[Build, Read]]:
    def ready(c: ModuleType, st: ModuleType, n: int) -> Any:
        return st.ReadyTasks(
            session_id=1,
            tasks=[
                st.ReadyTask(resource_group_id=1, job_id=9, task_id=c.TaskId(index=i))
                for i in range(n)
            ],
        )

    def read_all(message: Any) -> None:
        for entry in message.tasks.tasks:
            _ = (entry.resource_group_id, entry.job_id, entry.task_id.index)

    return {
        "RegisterTaskInstanceRequest": (
            lambda c, s, st: st.RegisterTaskInstanceRequest(
                job_id=9, task_id=c.TaskId(index=3), execution_manager_id=4, session_id=1
            ),
            lambda m, b: (lambda r: (r.job_id, r.task_id.index, r.execution_manager_id))(
                m.RegisterTaskInstanceRequest.FromString(b)
            ),
        ),
        "RegisterTaskInstanceResponse": (
            lambda c, s, st: st.RegisterTaskInstanceResponse(
                execution_context=st.ExecutionContext(
                    task_instance_id=77,
                    tdl_context=st.TdlContext(package="tasks", task_func="ns::add"),
                    timeout_policy=st.TimeoutPolicy(soft_timeout_ms=1000, hard_timeout_ms=2000),
                    serialized_task_io=b"\x00" * 48,
                )
            ),
            lambda m, b: (
                lambda r: (
                    r.execution_context.task_instance_id,
                    r.execution_context.tdl_context.package,
                    r.execution_context.tdl_context.task_func,
                    r.execution_context.timeout_policy.hard_timeout_ms,
                    r.execution_context.serialized_task_io,
                )
            )(m.RegisterTaskInstanceResponse.FromString(b)),
        ),
        "NextTaskRequest": (
            lambda c, s, st: s.NextTaskRequest(
                execution_manager_id=4, prev_assignment=_record(s, betterproto), wait_time_ms=500
            ),
            lambda m, b: (lambda r: (r.execution_manager_id, r.prev_assignment.id))(
                m.NextTaskRequest.FromString(b)
            ),
        ),
        "NextTaskResponse": (
            lambda c, s, st: s.NextTaskResponse(
                assignment=s.SchedulerAssignment(
                    id=41,
                    resource_group_id=1,
                    job_id=9,
                    task_id=c.TaskId(index=3),
                    scheduler_id=2,
                    session_id=1,
                )
            ),
            lambda m, b: (
                lambda r: (r.assignment.id, r.assignment.job_id, r.assignment.task_id.index)
            )(m.NextTaskResponse.FromString(b)),
        ),
        "ReportTaskSuccessRequest": (
            lambda c, s, st: st.ReportTaskSuccessRequest(
                job_id=9,
                task_id=c.TaskId(index=3),
                task_instance_id=77,
                execution_manager_id=4,
                session_id=1,
                serialized_outputs=OUTPUT,
            ),
            lambda m, b: (lambda r: (r.job_id, r.task_instance_id, r.serialized_outputs))(
                m.ReportTaskSuccessRequest.FromString(b)
            ),
        ),
        "ReadyTask (one entry)": (
            lambda c, s, st: st.ReadyTask(resource_group_id=1, job_id=9, task_id=c.TaskId(index=3)),
            lambda m, b: (lambda r: (r.resource_group_id, r.job_id, r.task_id.index))(
                m.ReadyTask.FromString(b)
            ),
        ),
        f"PollReadyTasksResponse ({READY_ENTRIES})": (
            lambda c, s, st: st.PollReadyTasksResponse(tasks=ready(c, st, READY_ENTRIES)),
            lambda m, b: read_all(m.PollReadyTasksResponse.FromString(b)),
        ),
    }


def _build_and_encode(build: Build, encode: Encode, modules: tuple[ModuleType, ...]) -> bytes:
    return encode(build(*modules))


def _best_us(fn: Callable[[], object], number: int, repeats: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing run")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs; the best counts")
    args = parser.parse_args()
    implementation = api_implementation.Type()
    if implementation != "upb":
        raise SystemExit(f"protobuf runs on its {implementation!r} backend, not upb")

    with tempfile.TemporaryDirectory() as tmp:
        bp = _betterproto_modules(Path(tmp))
        codecs: dict[str, tuple[tuple[ModuleType, ...], Encode, bool]] = {
            "betterproto": (bp, bytes, True),
            "pb2 (upb)": ((common, scheduler, storage), lambda m: m.SerializeToString(), False),
        }
        rows = []
        for name in _cases(False):
            timings: dict[str, tuple[float, float]] = {}
            wires: dict[str, bytes] = {}
            for codec, (modules, encode, is_bp) in codecs.items():
                build, read = _cases(is_bp)[name]
                # The 500-entry response costs about 500 small messages: fewer calls.
                number = args.number
                if name.startswith("PollReadyTasksResponse"):
                    number = max(1, args.number // 50)
                wires[codec] = wire = encode(build(*modules))
                target = modules[1] if name.startswith("NextTask") else modules[2]
                timings[codec] = (
                    _best_us(
                        partial(_build_and_encode, build, encode, modules), number, args.repeats
                    ),
                    _best_us(partial(read, target, wire), number, args.repeats),
                )
            if wires["betterproto"] != wires["pb2 (upb)"]:
                raise SystemExit(f"{name}: betterproto and pb2 wrote different bytes")
            rows.append((name, len(wires["pb2 (upb)"]), timings))

    print(f"protobuf backend: {implementation}; µs per operation, best of {args.repeats}")
    print()
    print(
        "| message | bytes | build+encode betterproto | build+encode pb2 | ratio "
        "| decode+read betterproto | decode+read pb2 | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, t in rows:
        (be, bd), (pe, pd) = t["betterproto"], t["pb2 (upb)"]
        print(
            f"| {name} | {size} | {be:.1f} | {pe:.2f} | {be / pe:.0f}x "
            f"| {bd:.1f} | {pd:.2f} | {bd / pd:.0f}x |"
        )


if __name__ == "__main__":
    main()
