"""``ExecutorProcess`` against the real executor program and the test TDL packages."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import ormsgpack
import pytest
import trio
from trio_util import RepeatedEvent

from spider.core import (
    EMPTY_FRAME,
    JobId,
    ResourceGroupId,
    TaskContext,
    TaskId,
    TaskInstanceId,
    TaskKind,
    decode_frame,
    encode_frame,
    encode_task_outputs,
)
from spider.executor import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Execute,
    ExecutorConfig,
    ExecutorExited,
    ExecutorProcess,
    ExecutorStartError,
    ExecutorUnusableError,
    Failure,
    FrameKind,
    Ready,
    Success,
    TaskOutcome,
    TooLarge,
)
from tests.processes import all_exit_within

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "packages"
PACKAGE = "integration_test_tasks"

# Generous: these bound real subprocesses (Python start-up, imports) on a busy 2-core machine;
# a healthy run takes a small fraction of it, a hang fails instead of blocking the suite.
DEADLINE = 30.0


def index_context(job_id: int = 42) -> bytes:
    """A ``TaskContext`` for the first task of a job."""
    return TaskContext(
        JobId(job_id), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(7)
    ).encode()


def execute(task: str, *values: Any, package: str = PACKAGE, ctx: bytes | None = None) -> Execute:
    """An ``Execute`` for ``package::task`` with ``values`` as msgpack inputs."""
    raw_inputs = encode_frame([ormsgpack.packb(value) for value in values])
    return Execute(package, task, ctx if ctx is not None else index_context(), raw_inputs)


def outputs_of(outcome: TaskOutcome) -> list[Any]:
    """The decoded output values of a ``Success`` (fails the test otherwise)."""
    assert isinstance(outcome, Success), outcome
    return [ormsgpack.unpackb(payload) for payload in decode_frame(outcome.outputs)]


def write_package(package_dir: Path, name: str, source: str) -> None:
    """Create a one-module TDL package ``name`` under ``package_dir``."""
    (package_dir / name).mkdir(parents=True)
    (package_dir / name / "__init__.py").write_text(textwrap.dedent(source))


@attrs.define(eq=False)
class StderrLog:
    """Everything an executor wrote to stderr, drained as it arrives."""

    data: bytearray = attrs.field(factory=bytearray)
    _updated: RepeatedEvent = attrs.field(factory=RepeatedEvent)
    _closed: bool = False

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        """Read ``stream`` to end-of-file, then close it."""
        async with stream:
            while chunk := await stream.receive_some():
                self.data += chunk
                self._updated.set()
        self._closed = True
        self._updated.set()

    @property
    def text(self) -> str:
        """What arrived so far, decoded leniently."""
        return self.data.decode(errors="replace")

    async def wait_for(self, needle: str) -> str:
        """Wait until ``needle`` has arrived (the caller bounds the wait); returns the text."""
        while needle not in self.text:
            if self._closed:
                raise AssertionError(f"stderr ended without {needle!r}:\n{self.text}")
            await self._updated.wait()
        return self.text


@asynccontextmanager
async def running_executor(**config: Any) -> AsyncIterator[tuple[ExecutorProcess, StderrLog]]:
    """A ready ``ExecutorProcess`` on the test packages, with its stderr drained; closed after."""
    settings: dict[str, Any] = {"package_dir": PACKAGE_DIR, **config}
    log = StderrLog()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            executor = await ExecutorProcess.start(ExecutorConfig(**settings))
        assert executor.stderr is not None
        nursery.start_soon(log.drain, executor.stderr)
        try:
            with trio.fail_after(DEADLINE):
                yield executor, log
        finally:
            with trio.move_on_after(DEADLINE, shield=True):
                await executor.aclose()


def commit_context(outputs: list[int]) -> bytes:
    """A commit task's context carrying the job's int outputs."""
    serialized = encode_task_outputs([ormsgpack.packb(value) for value in outputs])
    return TaskContext(
        JobId(42), TaskId(TaskKind.COMMIT), TaskInstanceId(2), ResourceGroupId(7), serialized
    ).encode()


async def test_fibonacci_returns_the_right_value() -> None:
    async with running_executor() as (executor, _):
        assert executor.ready == Ready(PROTOCOL_VERSION, executor.pid, DEFAULT_MAX_FRAME_BYTES)
        outcome = await executor.execute(execute("fibonacci", 10))
        assert outputs_of(outcome) == [55]
        assert isinstance(outcome, Success)
        assert outcome.elapsed_us > 0


async def test_a_raising_task_fails_with_its_type_message_and_traceback() -> None:
    async with running_executor() as (executor, _):
        outcome = await executor.execute(execute("always_fail"))
        assert isinstance(outcome, Failure)
        assert outcome.kind == "execution"
        assert "ValueError" in outcome.message
        assert "always_fail: intentional failure" in outcome.message
        assert outcome.exc_type == "ValueError"
        assert outcome.traceback is not None
        assert "raise ValueError" in outcome.traceback
        # An in-task failure leaves the executor serving.
        assert outputs_of(await executor.execute(execute("add", 2, 3))) == [5]


async def test_abort_is_reported_as_a_crash_with_sigabrt() -> None:
    async with running_executor() as (executor, log):
        with pytest.raises(ExecutorExited) as caught:
            await executor.execute(execute("always_abort"))
        assert caught.value.signal_name == "SIGABRT"
        assert caught.value.returncode != 0
        assert "executor crashed: killed by SIGABRT" in str(caught.value)
        assert executor.exit_status == caught.value.exit_status
        assert not executor.usable
        with pytest.raises(ExecutorUnusableError, match="interrupted or the executor failed"):
            await executor.execute(execute("add", 1, 2))
    assert "Executor exits." not in log.text


@pytest.mark.parametrize(
    ("package", "task", "kind", "needle"),
    [
        ("no_such_package", "add", "package_not_found", "no_such_package"),
        ("integration_test_tasks", "no_such_task", "task_not_found", "no_such_task"),
        ("../x", "add", "invalid_package_name", "'../x'"),
        ("a/b", "add", "invalid_package_name", "'a/b'"),
        ("/etc", "add", "invalid_package_name", "'/etc'"),
        (str(PACKAGE_DIR / "integration_test_tasks"), "add", "invalid_package_name", "invalid"),
    ],
)
async def test_lookup_failures_are_typed_and_the_executor_keeps_serving(
    package: str, task: str, kind: str, needle: str
) -> None:
    async with running_executor() as (executor, _):
        outcome = await executor.execute(execute(task, 1, 2, package=package))
        assert isinstance(outcome, Failure)
        assert outcome.kind == kind
        assert needle in outcome.message
        assert outputs_of(await executor.execute(execute("add", 1, 2))) == [3]


async def test_a_failing_load_hook_fails_every_task_of_the_package_the_same_way() -> None:
    async with running_executor() as (executor, _):
        first = await executor.execute(execute("never_runs", package="bad_init"))
        second = await executor.execute(execute("never_runs", package="bad_init"))
        for outcome in (first, second):
            assert isinstance(outcome, Failure)
            assert outcome.kind == "package_init"
            assert "bad_init: initialization always fails" in outcome.message
            assert outcome.exc_type == "RuntimeError"
        assert isinstance(first, Failure)
        assert isinstance(second, Failure)
        assert first.message == second.message
        # Other packages are unaffected.
        assert outputs_of(await executor.execute(execute("add", 1, 1))) == [2]


async def test_the_load_hook_sees_the_configured_environment_and_its_failure_sticks() -> None:
    env = {"SPIDER_TEST_TDL_INIT_SHOULD_FAIL": "1"}
    async with running_executor(env=env) as (executor, _):
        for task in ("fibonacci", "add"):
            outcome = await executor.execute(execute(task, 1, 1))
            assert isinstance(outcome, Failure)
            assert outcome.kind == "package_init"
            assert "init failure requested" in outcome.message


async def test_a_failed_load_is_cached_and_the_hook_never_reruns(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    write_package(
        tmp_path,
        "flaky_init",
        f"""
        from spider.tdl import on_load, task

        @on_load
        def initialize() -> None:
            with open({str(calls)!r}, "a") as file:
                file.write("called\\n")
            raise OSError("flaky_init: no database")

        @task
        def work() -> int:
            return 1
        """,
    )
    async with running_executor(package_dir=tmp_path) as (executor, _):
        for _ in range(3):
            outcome = await executor.execute(execute("work", package="flaky_init"))
            assert isinstance(outcome, Failure)
            assert outcome.kind == "package_init"
            assert "OSError: flaky_init: no database" in outcome.message
    assert calls.read_text() == "called\n"


async def test_a_package_not_found_is_retried_once_it_is_installed(tmp_path: Path) -> None:
    async with running_executor(package_dir=tmp_path) as (executor, _):
        missing = await executor.execute(execute("work", package="late"))
        assert isinstance(missing, Failure)
        assert missing.kind == "package_not_found"
        write_package(
            tmp_path,
            "late",
            """
            from spider.tdl import task

            @task
            def work() -> int:
                return 7
            """,
        )
        assert outputs_of(await executor.execute(execute("work", package="late"))) == [7]


async def test_a_package_that_fails_to_import_is_a_package_init_failure() -> None:
    async with running_executor() as (executor, _):
        outcome = await executor.execute(
            execute("registered_before_failure", package="broken_import")
        )
        assert isinstance(outcome, Failure)
        assert outcome.kind == "package_init"
        assert outcome.exc_type == "ImportError"
        assert "broken_import: this package cannot be imported" in outcome.message


async def test_the_commit_task_gets_the_job_outputs_through_its_context() -> None:
    async with running_executor() as (executor, _):
        passing = Execute(
            "integration_test_tasks",
            "assert_outputs_sum_zero",
            commit_context([3, -1, -2]),
            EMPTY_FRAME,
        )
        outcome = await executor.execute(passing)
        assert outcome == Success(outputs=EMPTY_FRAME, elapsed_us=outcome.elapsed_us)
        failing = Execute(
            "integration_test_tasks",
            "assert_outputs_sum_zero",
            commit_context([1, 2, 3]),
            EMPTY_FRAME,
        )
        outcome = await executor.execute(failing)
        assert isinstance(outcome, Failure)
        assert "sum to zero" in outcome.message
        assert "got 6" in outcome.message


async def test_a_cleanup_task_runs_on_the_empty_input_frame() -> None:
    cleanup_ctx = TaskContext(
        JobId(99), TaskId(TaskKind.CLEANUP), TaskInstanceId(3), ResourceGroupId(7)
    ).encode()
    empty_frame = bytes.fromhex("00000000")
    async with running_executor() as (executor, log):
        outcome = await executor.execute(
            Execute("integration_test_tasks", "cleanup_marker", cleanup_ctx, empty_frame)
        )
        assert outcome == Success(outputs=EMPTY_FRAME, elapsed_us=outcome.elapsed_us)
        await log.wait_for("cleanup_marker: job 99")


async def test_an_oversized_request_is_refused_with_its_size_and_the_limit() -> None:
    limit = 64 * 1024
    async with running_executor(max_frame_bytes=limit) as (executor, _):
        outcome = await executor.execute(execute("echo_bytes", b"x" * (2 * limit)))
        assert isinstance(outcome, TooLarge)
        assert outcome.frame is FrameKind.REQUEST
        assert outcome.limit == limit
        assert outcome.size > 2 * limit
        assert f"{outcome.size} bytes" in outcome.message
        assert f"limit of {limit} bytes" in outcome.message
        assert outputs_of(await executor.execute(execute("echo_bytes", b"small"))) == [b"small"]


async def test_an_oversized_output_is_a_typed_failure_and_the_executor_keeps_serving() -> None:
    limit = 64 * 1024
    async with running_executor(max_frame_bytes=limit) as (executor, log):
        outcome = await executor.execute(execute("produce_bytes", 3 * limit))
        assert isinstance(outcome, TooLarge)
        assert outcome.frame is FrameKind.RESPONSE
        assert outcome.limit == limit
        assert outcome.size > 3 * limit
        assert "task outputs" in outcome.message
        assert f"limit of {limit} bytes" in outcome.message
        assert outputs_of(await executor.execute(execute("produce_bytes", 3))) == [b"\x00\x01\x02"]
        await log.wait_for("A response frame is over the limit")


async def test_outputs_just_under_the_default_limit_go_through() -> None:
    async with running_executor() as (executor, _):
        size = 8 * 1024 * 1024 - 64
        [data] = outputs_of(await executor.execute(execute("produce_bytes", size)))
        assert data == bytes(index % 251 for index in range(size))


async def test_task_output_on_stdout_does_not_corrupt_the_protocol(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "noisy",
        """
        import os
        import subprocess
        import sys

        from spider.tdl import task

        @task
        def shout(n: int) -> int:
            print("print to stdout")
            sys.stdout.write("sys.stdout.write\\n")
            os.write(1, b"raw fd 1 write\\n")
            subprocess.run([sys.executable, "-c", "print('grandchild stdout')"], check=True)
            return n * 2
        """,
    )
    async with running_executor(package_dir=tmp_path) as (executor, log):
        assert outputs_of(await executor.execute(execute("shout", 21, package="noisy"))) == [42]
        assert outputs_of(await executor.execute(execute("shout", 1, package="noisy"))) == [2]
        text = await log.wait_for("grandchild stdout")
        for line in ("print to stdout", "sys.stdout.write", "raw fd 1 write"):
            assert line in text


async def test_aclose_shuts_the_executor_down_cleanly() -> None:
    async with running_executor() as (executor, log):
        assert outputs_of(await executor.execute(execute("add", 1, 2))) == [3]
        await executor.aclose()
        assert executor.exit_status is not None
        assert executor.exit_status.returncode == 0
        assert not executor.usable
        with pytest.raises(ExecutorUnusableError, match="closed"):
            await executor.execute(execute("add", 1, 2))
        await executor.aclose()  # idempotent
        await log.wait_for("Received shutdown request.")


async def test_a_clean_exit_takes_the_daemons_a_task_left_behind(tmp_path: Path) -> None:
    pids_path = tmp_path / "tree.pids"
    async with running_executor() as (executor, _):
        outcome = await executor.execute(execute("spawn_process_tree", str(pids_path), "", False))
        pids = outputs_of(outcome)[0]
        # The daemon (a double fork, then setsid) left the executor's session and group.
        assert os.getsid(pids[2]) != os.getsid(executor.pid)
        await executor.aclose()
        assert executor.exit_status is not None
        assert executor.exit_status.returncode == 0
        assert await all_exit_within(pids, seconds=1) == []


async def test_aclose_in_a_cancelled_scope_still_kills_and_reaps() -> None:
    async with running_executor() as (executor, _):
        with trio.CancelScope() as scope:
            scope.cancel(reason="shutting down in a hurry")
            await executor.aclose()
        assert executor.exit_status is not None
        assert executor.exit_status.signal_name == "SIGKILL"


async def test_a_cancelled_execute_breaks_the_handle_and_kill_ends_it() -> None:
    async with running_executor() as (executor, log):
        with trio.move_on_after(0.5) as scope:
            await executor.execute(execute("spawn_grandchild_and_hang"))
        assert scope.cancelled_caught
        assert not executor.usable
        with pytest.raises(ExecutorUnusableError, match="interrupted"):
            await executor.execute(execute("add", 1, 2))
        executor.kill()
        await executor.aclose()
        assert executor.exit_status is not None
        assert executor.exit_status.signal_name == "SIGKILL"
    assert "Executor exits." not in log.text


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_kill_during_execute_reports_sigkill_and_takes_grandchildren(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "spawner",
        """
        import subprocess
        import sys
        import time

        from spider.tdl import task

        @task
        def spawn_and_hang() -> None:
            child = subprocess.Popen(["sleep", "1000"])
            print(f"grandchild pid={child.pid};", file=sys.stderr, flush=True)
            while True:
                time.sleep(1000)
        """,
    )
    pidfds: list[int] = []
    async with running_executor(package_dir=tmp_path) as (executor, log):

        async def kill_once_the_grandchild_runs() -> None:
            text = await log.wait_for(";")
            grandchild = int(text.split("grandchild pid=")[1].split(";")[0])
            pidfds.append(os.pidfd_open(grandchild))
            executor.kill()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_once_the_grandchild_runs)
            with pytest.raises(ExecutorExited) as caught:
                await executor.execute(execute("spawn_and_hang", package="spawner"))
        assert caught.value.signal_name == "SIGKILL"
        # The grandchild was in the executor's process group: it dies too.
        try:
            await trio.lowlevel.wait_readable(pidfds[0])
        finally:
            os.close(pidfds[0])


async def test_a_missing_package_dir_fails_start_with_the_reason(tmp_path: Path) -> None:
    config = ExecutorConfig(package_dir=tmp_path / "nowhere")
    with trio.fail_after(30), pytest.raises(ExecutorStartError) as caught:
        await ExecutorProcess.start(config)
    assert caught.value.exit_status is not None
    assert caught.value.exit_status.returncode == 2
    assert "exited with code 2" in str(caught.value)
    assert "does not exist" in caught.value.stderr
    assert "SPIDER_TDL_PACKAGE_DIR" in str(caught.value)


async def test_a_missing_executor_program_fails_start(tmp_path: Path) -> None:
    config = ExecutorConfig(package_dir=PACKAGE_DIR, command=(str(tmp_path / "no-such-binary"),))
    with pytest.raises(ExecutorStartError, match="could not start the task executor"):
        await ExecutorProcess.start(config)


_FAKE_READY = """
import os, sys
import ormsgpack
body = ormsgpack.packb({fields})
os.write(1, {length} + body)
sys.stdin.read()
"""


_BODY_LENGTH = 'len(body).to_bytes(4, "big")'


@pytest.mark.parametrize(
    ("fields", "length", "needle"),
    [
        ("[16, 999, os.getpid(), 8388608]", _BODY_LENGTH, "protocol version 999"),
        ("[16, 1, os.getpid(), 4096]", _BODY_LENGTH, "frame limit of 4096 bytes"),
        ("[17, b'', 0]", _BODY_LENGTH, "sent Success instead of Ready"),
        ("[99]", _BODY_LENGTH, "handshake is invalid: .* unknown message tag 99"),
        ("[16]", 'b"\\xff\\xff\\xff\\xff"', "handshake is invalid: .* 4294967295 bytes exceeds"),
    ],
)
async def test_a_bad_handshake_fails_start_and_kills_the_impostor(
    fields: str, length: str, needle: str
) -> None:
    command = (sys.executable, "-c", _FAKE_READY.format(fields=fields, length=length))
    config = ExecutorConfig(package_dir=PACKAGE_DIR, command=command, capture_stderr=False)
    with trio.fail_after(30), pytest.raises(ExecutorStartError, match=needle):
        await ExecutorProcess.start(config)


async def test_the_console_script_speaks_the_protocol() -> None:
    script = Path(sys.executable).with_name("spider-task-executor")
    if not script.exists():
        pytest.skip("the spider-task-executor console script is not installed")
    async with running_executor(command=(str(script),)) as (executor, _):
        assert outputs_of(await executor.execute(execute("fibonacci", 7))) == [13]


async def test_index_context_is_rejected_by_a_commit_only_task() -> None:
    async with running_executor() as (executor, _):
        request = Execute(
            "integration_test_tasks", "assert_outputs_sum_zero", index_context(), EMPTY_FRAME
        )
        outcome = await executor.execute(request)
        assert isinstance(outcome, Failure)
        assert "commit task" in outcome.message
