"""The executor program driven byte by byte: environment checks, exit codes, framing edge cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import ormsgpack
import pytest
import trio

from spider.core import JobId, ResourceGroupId, TaskContext, TaskId, TaskInstanceId, encode_frame
from spider.executor import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Execute,
    ExecutorExitStatus,
    FramedPipe,
    FrameKind,
    Ready,
    Response,
    Shutdown,
    Success,
    TooLarge,
)
from spider.executor.protocol import (
    ENV_LOG_LEVEL,
    ENV_MAX_FRAME_BYTES,
    ENV_PACKAGE_DIR,
    HEADER,
    decode_response,
    encode_request,
)
from tests.processes import all_exit_within

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "packages"
# Generous: bounds a real Python subprocess on a busy machine; a hang fails, not blocks.
DEADLINE = 30.0
CONTEXT = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(1), ResourceGroupId(1)).encode()


def framed(body: bytes) -> bytes:
    """``body`` behind its u32 BE length."""
    return HEADER.pack(len(body)) + body


def fibonacci_frame(index: int) -> bytes:
    """A framed ``Execute`` of ``integration_test_tasks::fibonacci(index)``."""
    inputs = encode_frame([ormsgpack.packb(index)])
    return framed(encode_request(Execute("integration_test_tasks", "fibonacci", CONTEXT, inputs)))


def fibonacci_of(response: Response | None) -> int:
    """The value a successful ``fibonacci`` returned."""
    assert isinstance(response, Success), response
    return int(ormsgpack.unpackb(response.outputs[8:]))


@attrs.define(eq=False)
class RawExecutor:
    """The executor program with its three pipes in the test's hands."""

    process: trio.Process
    pipe: FramedPipe

    async def send(self, data: bytes) -> None:
        """Raw bytes to the executor's stdin."""
        await self.pipe.send_frame(data)

    async def receive(self) -> Response | None:
        """The next decoded response, or ``None`` at end-of-file."""
        body = await self.pipe.receive_frame()
        return None if body is None else decode_response(body)

    async def close_stdin(self) -> None:
        """End-of-file for the executor."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def finish(self) -> tuple[ExecutorExitStatus, str]:
        """Wait for the executor to exit on its own; its exit status and whole stderr."""
        assert self.process.stderr is not None
        stderr = bytearray()
        while chunk := await self.process.stderr.receive_some():
            stderr += chunk
        return ExecutorExitStatus(await self.process.wait()), stderr.decode()


@asynccontextmanager
async def raw_executor(env: Mapping[str, str | None] | None = None) -> AsyncIterator[RawExecutor]:
    """The executor on the test packages; ``env`` entries override (``None`` unsets)."""
    child_env = {**os.environ, ENV_PACKAGE_DIR: str(PACKAGE_DIR)}
    for key, value in {ENV_MAX_FRAME_BYTES: None, ENV_LOG_LEVEL: None, **(env or {})}.items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "executor_bin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
        start_new_session=True,
    )
    configured = child_env.get(ENV_MAX_FRAME_BYTES, "")
    limit = int(configured) if configured.isdigit() else DEFAULT_MAX_FRAME_BYTES
    try:
        with trio.fail_after(DEADLINE):
            yield RawExecutor(process, FramedPipe.of_process(process, limit))
    finally:
        with trio.move_on_after(DEADLINE, shield=True):
            process.kill()
            await process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()


async def expect_ready(executor: RawExecutor, limit: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """The handshake every executor starts with."""
    assert await executor.receive() == Ready(PROTOCOL_VERSION, executor.process.pid, limit)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (None, "SPIDER_TDL_PACKAGE_DIR is not set"),
        ("", "SPIDER_TDL_PACKAGE_DIR is not set"),
        ("/no/such/directory", "does not exist"),
        (__file__, "is not a directory"),
    ],
)
async def test_an_unusable_package_dir_exits_2_with_a_clear_message(
    value: str | None, needle: str
) -> None:
    async with raw_executor({ENV_PACKAGE_DIR: value}) as executor:
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 2
    assert needle in stderr
    [line] = stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "CRITICAL"
    assert needle in record["message"]


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        (ENV_MAX_FRAME_BYTES, "lots", "SPIDER_EXECUTOR_MAX_FRAME_BYTES='lots' is invalid"),
        (ENV_MAX_FRAME_BYTES, "10", "between 1024 and 4294967295"),
        (ENV_LOG_LEVEL, "LOUD", "SPIDER_LOG_LEVEL='LOUD' is not a log level"),
    ],
)
async def test_invalid_optional_settings_exit_2(key: str, value: str, needle: str) -> None:
    async with raw_executor({key: value}) as executor:
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 2
    assert needle in stderr


async def test_end_of_file_on_stdin_is_a_clean_exit() -> None:
    async with raw_executor() as executor:
        await expect_ready(executor)
        await executor.send(fibonacci_frame(10))
        assert fibonacci_of(await executor.receive()) == 55
        await executor.close_stdin()
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 0
    assert "Stdin closed; stopping." in stderr


async def test_stdin_closing_while_a_task_runs_kills_the_tasks_processes_and_the_executor(
    tmp_path: Path,
) -> None:
    # The parent is gone (as when the EM is SIGKILLed): nobody will take the result.
    started = tmp_path / "started.fifo"
    os.mkfifo(started)
    pids_path = tmp_path / "tree.pids"
    task_inputs = encode_frame([ormsgpack.packb(v) for v in (str(pids_path), str(started), True)])
    request = Execute("integration_test_tasks", "spawn_process_tree", CONTEXT, task_inputs)
    async with raw_executor() as executor:
        await expect_ready(executor)
        await executor.send(framed(encode_request(request)))
        await trio.to_thread.run_sync(started.read_bytes, abandon_on_cancel=True)
        pids = [int(pid) for pid in pids_path.read_text().split()]
        await executor.close_stdin()
        assert await all_exit_within(pids, seconds=1) == []
        status, stderr = await executor.finish()
    assert status.signal_name == "SIGKILL"
    assert "The parent is gone while a task runs" in stderr


async def test_shutdown_is_a_clean_exit() -> None:
    async with raw_executor() as executor:
        await expect_ready(executor)
        await executor.send(framed(encode_request(Shutdown())))
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 0
    assert "Received shutdown request." in stderr


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xc1", id="not-msgpack"),
        pytest.param(ormsgpack.packb([99]), id="unknown-tag"),
        pytest.param(ormsgpack.packb({"tag": 1}), id="not-an-array"),
        pytest.param(ormsgpack.packb([1, "integration_test_tasks"]), id="missing-fields"),
        pytest.param(ormsgpack.packb([1, "p", "f", "ctx", b""]), id="wrong-field-type"),
        pytest.param(fibonacci_frame(3)[4:] + b"\x00", id="trailing-byte"),
        pytest.param(ormsgpack.packb([17, b"", 0]), id="a-response-sent-as-request"),
        pytest.param(b"", id="empty-body"),
    ],
)
async def test_a_garbage_frame_ends_the_executor_with_exit_code_3(body: bytes) -> None:
    async with raw_executor() as executor:
        await expect_ready(executor)
        await executor.send(framed(body))
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 3
    assert "Protocol error; exiting." in stderr
    assert status.describe() == "exited with code 3 (protocol error)"


async def test_end_of_file_inside_a_frame_is_a_protocol_error() -> None:
    async with raw_executor() as executor:
        await expect_ready(executor)
        await executor.send(fibonacci_frame(3)[:-2])
        await executor.close_stdin()
        assert await executor.receive() is None
        status, stderr = await executor.finish()
    assert status.returncode == 3
    assert "stdin ended in the middle of a frame" in stderr


async def test_an_oversized_request_frame_is_discarded_and_answered_with_the_sizes() -> None:
    size = DEFAULT_MAX_FRAME_BYTES + 1
    async with raw_executor() as executor:
        await expect_ready(executor)
        # Not even msgpack: the executor must skip it by its length alone.
        await executor.send(HEADER.pack(size) + b"\xc1" * size)
        response = await executor.receive()
        assert isinstance(response, TooLarge)
        assert (response.frame, response.size, response.limit) == (
            FrameKind.REQUEST,
            size,
            DEFAULT_MAX_FRAME_BYTES,
        )
        assert f"is {size} bytes, over the executor frame limit of 8388608 bytes" in (
            response.message
        )
        await executor.send(fibonacci_frame(10))
        assert fibonacci_of(await executor.receive()) == 55


async def test_frames_split_or_batched_arbitrarily_are_all_answered() -> None:
    limit = 2048
    async with raw_executor({ENV_MAX_FRAME_BYTES: str(limit)}) as executor:
        await expect_ready(executor, limit)
        oversized = HEADER.pack(limit + 10) + b"\x00" * (limit + 10)
        stream = fibonacci_frame(5) + oversized + fibonacci_frame(6) + fibonacci_frame(7)
        # Byte by byte through the first frame's header, then the rest in uneven slices.
        for index in range(3):
            await executor.send(stream[index : index + 1])
        for start in range(3, len(stream), 700):
            await executor.send(stream[start : start + 700])
        assert fibonacci_of(await executor.receive()) == 5
        too_large = await executor.receive()
        assert isinstance(too_large, TooLarge)
        assert too_large.size == limit + 10
        assert fibonacci_of(await executor.receive()) == 8
        assert fibonacci_of(await executor.receive()) == 13


async def test_logs_are_json_lines_at_the_configured_level() -> None:
    async with raw_executor({ENV_LOG_LEVEL: "debug"}) as executor:
        await expect_ready(executor)
        await executor.send(fibonacci_frame(4))
        assert fibonacci_of(await executor.receive()) == 3
        await executor.close_stdin()
        status, stderr = await executor.finish()
    assert status.returncode == 0
    records = [json.loads(line) for line in stderr.splitlines()]
    assert all({"timestamp", "level", "message"} <= record.keys() for record in records)
    executing = next(record for record in records if record["message"] == "Executing task.")
    assert executing["level"] == "DEBUG"
    assert executing["task_func"] == "fibonacci"
    assert records[0]["message"] == "Executor starts."
    assert records[0]["pid"] == executor.process.pid


async def test_warning_level_keeps_stderr_quiet() -> None:
    async with raw_executor({ENV_LOG_LEVEL: "WARNING"}) as executor:
        await expect_ready(executor)
        await executor.send(fibonacci_frame(4))
        assert fibonacci_of(await executor.receive()) == 3
        await executor.close_stdin()
        status, stderr = await executor.finish()
    assert status.returncode == 0
    assert stderr == ""
