"""``ExecutorProcess``: the parent's handle on one task executor subprocess.

The executor runs in its own process group so that killing it also kills whatever its tasks
spawned; what they started in a new session or group is found below the executor (a child
subreaper) and killed first (``spider.executor.process_tree``). Every way out (clean shutdown, crash, kill) ends the same way: wait, if there is time,
for the reply pipe to reach end-of-file, SIGKILL the group, then reap. End-of-file on the reply
pipe only happens once the kernel tears the executor down, when its exit status is already fixed,
so the group kill never masks a real exit status; and the leader is still unreaped at that
point, so its pid (the group id) cannot have been reused.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from spider.executor.errors import (
    ExecutorExited,
    ExecutorProtocolError,
    ExecutorStartError,
    ExecutorUnusableError,
)
from spider.executor.exit_status import ExecutorExitStatus
from spider.executor.pipe import FramedPipe
from spider.executor.process_tree import kill_descendants
from spider.executor.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ENV_MAX_FRAME_BYTES,
    ENV_PACKAGE_DIR,
    HEADER,
    PROTOCOL_VERSION,
    Execute,
    FrameKind,
    Ready,
    Shutdown,
    TaskOutcome,
    TooLarge,
    decode_response,
    encode_package_dir,
    encode_request,
    frame,
    validate_max_frame_bytes,
    validate_package_dir,
)

# Reaping a SIGKILLed process takes microseconds; the bound only guards against a process
# stuck in uninterruptible sleep holding up the caller's cleanup forever.
_REAP_BOUND_SECONDS = 5.0
_STDERR_TAIL_BYTES = 4096
# The executor is dead by then: its stderr ends at once unless something it left behind holds it.
_STDERR_TAIL_WAIT_SECONDS = 1.0
_SHUTDOWN_FRAME = frame(encode_request(Shutdown()), DEFAULT_MAX_FRAME_BYTES)


def default_executor_command() -> tuple[str, ...]:
    """The bundled Python executor, run by the interpreter running this process."""
    return (sys.executable, "-m", "executor_bin")


def _frame_limit(_instance: object, _attribute: object, value: int) -> None:
    validate_max_frame_bytes(value)


@attrs.frozen
class ExecutorConfig:
    """How to start an executor, and the grace periods for ending it."""

    package_dir: tuple[Path, ...] = attrs.field(converter=validate_package_dir)
    """The directories TDL packages are loaded from, searched in order: one path or several
    (``SPIDER_TDL_PACKAGE_DIR``)."""
    command: tuple[str, ...] = attrs.field(factory=default_executor_command)
    """The executor program and its arguments."""
    max_frame_bytes: int = attrs.field(default=DEFAULT_MAX_FRAME_BYTES, validator=_frame_limit)
    """The frame limit both sides enforce."""
    env: Mapping[str, str] = attrs.field(factory=dict)
    """Variables set on top of the inherited environment."""
    capture_stderr: bool = True
    """Pipe stderr to ``ExecutorProcess.stderr`` (else the executor inherits ours)."""
    shutdown_grace: float = 2.0
    """Seconds ``aclose`` waits for a clean exit after ``Shutdown`` before killing."""

    def child_environment(self) -> dict[str, str]:
        """The executor's environment: ours, ``env``, then the protocol's variables."""
        return {
            **os.environ,
            **self.env,
            ENV_PACKAGE_DIR: encode_package_dir(self.package_dir),
            ENV_MAX_FRAME_BYTES: str(self.max_frame_bytes),
        }


class _State(enum.Enum):
    READY = enum.auto()
    BUSY = enum.auto()
    BROKEN = enum.auto()
    CLOSED = enum.auto()


@attrs.define(eq=False)
class ExecutorProcess(trio.abc.AsyncResource):
    """A running executor that has said it is ready; serves one ``execute`` at a time.

    Start one with ``await ExecutorProcess.start(config)`` and end it with ``aclose()`` (or
    ``async with``). If ``execute`` is interrupted (cancelled, or the executor misbehaved) the
    handle becomes unusable, since the pipes may be mid-frame: close it and start another.
    """

    _config: ExecutorConfig
    _process: trio.Process
    _pipe: FramedPipe
    stderr: trio.abc.ReceiveStream | None
    """The executor's stderr (JSON log lines and anything tasks print), for the caller to
    drain and close; ``None`` when the config does not capture it."""
    _ready: Ready | None = None
    _state: _State = _State.READY
    _exit_status: ExecutorExitStatus | None = None

    @classmethod
    async def start(cls, config: ExecutorConfig) -> ExecutorProcess:
        """Spawn an executor and wait for its ``Ready`` frame.

        Raises ``ExecutorStartError`` (with the exit status and the end of its stderr when it
        died first). Callers bound the wait with ``trio.fail_after``.
        """
        try:
            process = await trio.lowlevel.open_process(
                list(config.command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if config.capture_stderr else None,
                env=config.child_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorStartError(
                f"could not start the task executor {config.command[0]!r}: {exc}; "
                "check the executor command"
            ) from exc
        executor = cls(
            config=config,
            process=process,
            pipe=FramedPipe.of_process(process, config.max_frame_bytes),
            stderr=process.stderr,
        )
        try:
            executor._ready = await executor._handshake()
        except BaseException:
            with trio.move_on_after(_REAP_BOUND_SECONDS, shield=True):
                await executor._terminate()
                if executor.stderr is not None:
                    await executor.stderr.aclose()
            raise
        return executor

    @property
    def ready(self) -> Ready:
        """The executor's handshake: its protocol version, pid and frame limit."""
        assert self._ready is not None  # start() returns the handle only after the handshake
        return self._ready

    @property
    def pid(self) -> int:
        """The executor's process id, which is also its process group id."""
        return self._process.pid

    @property
    def exit_status(self) -> ExecutorExitStatus | None:
        """How the executor ended, once it has been reaped."""
        return self._exit_status

    @property
    def usable(self) -> bool:
        """Whether ``execute`` can be called."""
        return self._state is _State.READY

    async def execute(self, request: Execute) -> TaskOutcome:
        """Run one task and return the executor's answer.

        A request over the frame limit is answered here with ``TooLarge`` without bothering the
        executor. Raises ``ExecutorExited`` when the executor dies (the handle then holds its
        exit status), ``ExecutorProtocolError`` for a reply that is not one, and
        ``ExecutorUnusableError`` when the handle cannot serve.
        """
        self._claim()
        limit = self._config.max_frame_bytes
        body = encode_request(request)
        if len(body) > limit:
            self._state = _State.READY
            await trio.lowlevel.checkpoint()
            return TooLarge(FrameKind.REQUEST, len(body), limit, elapsed_us=0)
        completed = False
        try:
            reply = await self._exchange(HEADER.pack(len(body)) + body)
            if reply is None:
                raise ExecutorExited(await self._terminate())
            response = decode_response(reply)
            if isinstance(response, Ready):
                raise ExecutorProtocolError("the executor sent Ready again in reply to Execute")
            completed = True
            return response
        finally:
            # aclose() may have run meanwhile (from another task): CLOSED stays CLOSED.
            if self._state is _State.BUSY:
                self._state = _State.READY if completed else _State.BROKEN

    def kill(self) -> None:
        """SIGKILL every process below the executor, then its whole process group, now;
        ``aclose`` reaps it."""
        if self._state is not _State.CLOSED:
            self._state = _State.BROKEN
        self._kill_group()

    async def aclose(self) -> None:
        """Shut the executor down and reap it.

        A ready executor gets ``Shutdown`` and up to ``shutdown_grace`` seconds to exit on its
        own; then (or at once, if the handle is broken or the call is cancelled) the process
        group is killed. Does not close ``stderr``: its reader drains it to end-of-file.
        """
        if self._state is _State.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        graceful = self._state is _State.READY
        self._state = _State.CLOSED
        try:
            if graceful:
                with trio.move_on_after(self._config.shutdown_grace):
                    await self._shut_down()
        finally:
            with trio.move_on_after(_REAP_BOUND_SECONDS, shield=True):
                await self._terminate()

    def _claim(self) -> None:
        if self._state is _State.READY:
            self._state = _State.BUSY
            return
        reasons = {
            _State.BUSY: "another task is already executing on it",
            _State.BROKEN: "a previous call was interrupted or the executor failed; close it "
            "and start a new one",
            _State.CLOSED: "it is closed",
        }
        raise ExecutorUnusableError(
            f"executor {self.pid} cannot run a task: {reasons[self._state]}"
        )

    async def _handshake(self) -> Ready:
        try:
            reply = await self._pipe.receive_frame()
            response = None if reply is None else decode_response(reply)
        except ExecutorProtocolError as exc:
            raise ExecutorStartError(f"the task executor's handshake is invalid: {exc}") from exc
        if response is None:
            status = await self._terminate()
            raise ExecutorStartError(
                f"the task executor {status.describe()} before it was ready",
                exit_status=status,
                stderr=await self._stderr_tail(),
            )
        if not isinstance(response, Ready):
            raise ExecutorStartError(
                f"the task executor sent {type(response).__name__} instead of Ready"
            )
        if response.protocol_version != PROTOCOL_VERSION:
            raise ExecutorStartError(
                f"the task executor speaks protocol version {response.protocol_version}, this "
                f"process speaks {PROTOCOL_VERSION}: install matching versions of Spider-py"
            )
        if response.max_frame_bytes != self._config.max_frame_bytes:
            raise ExecutorStartError(
                f"the task executor uses a frame limit of {response.max_frame_bytes} bytes, "
                f"not the configured {self._config.max_frame_bytes}: it ignored "
                f"{ENV_MAX_FRAME_BYTES}; check the executor command"
            )
        return response

    async def _exchange(self, data: bytes) -> bytes | None:
        """Send one frame and receive the reply; ``None`` if the executor went away."""
        try:
            await self._pipe.send_frame(data)
        except trio.BrokenResourceError:
            return None
        return await self._pipe.receive_frame()

    async def _shut_down(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await self._pipe.send_frame(_SHUTDOWN_FRAME)
        # Nothing more is expected; whatever arrives before end-of-file is discarded.
        assert self._process.stdout is not None
        while await self._process.stdout.receive_some():
            pass

    async def _terminate(self) -> ExecutorExitStatus:
        """Kill the process group, reap the executor and close our pipe ends."""
        self._kill_group()
        if self._exit_status is None:
            self._exit_status = ExecutorExitStatus(await self._process.wait())
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                await stream.aclose()
        return self._exit_status

    async def _stderr_tail(self) -> str:
        if self.stderr is None:
            return ""
        tail = bytearray()
        with trio.move_on_after(_STDERR_TAIL_WAIT_SECONDS):
            while chunk := await self.stderr.receive_some():
                tail += chunk
                del tail[:-_STDERR_TAIL_BYTES]
        return tail.decode(errors="replace").strip()

    def _kill_group(self) -> None:
        # Once reaped, the pid may belong to someone else: never signal it again.
        if self._exit_status is None:
            pid = self._process.pid
            # Frozen, the executor forks no more while its tree is walked; alive (a stopped
            # subreaper), it takes back the orphans of each process killed below it, so the
            # walk finds them too. Then the group, the executor with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGSTOP)
            kill_descendants(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
