"""Forwarding an executor's stderr to the EM's log, one JSON record per line.

Each line becomes a record of the ``spider.em.executor`` logger tagged with the executor, its
slot and the task it was running. A line that is itself a JSON object (the executor's own logs)
is kept whole as the ``executor`` field, and its level is used; anything else (a task's
``print``) is forwarded as text at INFO. Invalid UTF-8 is replaced, never fatal. The pipe is
always drained, so an executor never blocks on it; what cannot be forwarded is counted instead:
lines over the length cap are truncated, lines over the rate cap are dropped, and a warning with
the counts goes out at most once per ``REPORT_INTERVAL``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import struct
import termios
from typing import Any, Final

import attrs
import trio
from trio_util import RepeatedEvent

from spider.core.ids import JobId, TaskInstanceId
from spider.core.task_id import TaskId
from spider.em.pool._lines import LineSplitter, StderrLine
from spider.em.pool._rate import LineRateLimiter

LOGGER: Final = logging.getLogger("spider.em.executor")
"""Where executors' stderr lines and the forwarder's own warnings go."""

REPORT_INTERVAL: Final = 1.0
"""Seconds between two warnings about truncated or dropped lines of one executor."""

_READ_CHUNK: Final = 64 * 1024
_PENDING: Final = struct.Struct("i")
_LEVELS: Final = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


@attrs.frozen
class TaskLabels:
    """The task a forwarded line is attributed to."""

    job_id: JobId
    task_id: TaskId
    task_instance_id: TaskInstanceId

    def fields(self) -> dict[str, Any]:
        """The record fields naming the task."""
        return {
            "job_id": self.job_id,
            "task_id": str(self.task_id),
            "task_instance_id": self.task_instance_id,
        }


@attrs.define(eq=False)
class StderrForwarder:
    """Reads one executor's stderr until end-of-file (or until told to stop) and logs it.

    Start ``run`` in a nursery; ``stop_within`` bounds how long it may keep reading once the
    executor is gone (a grandchild that left the process group may hold the pipe open).
    """

    stream: trio.abc.ReceiveStream
    executor_id: int
    slot: int
    max_line_bytes: int
    lines_per_second: float
    burst_lines: int
    lines_forwarded: int = attrs.field(default=0, init=False)
    lines_truncated: int = attrs.field(default=0, init=False)
    lines_dropped: int = attrs.field(default=0, init=False)
    _labels: TaskLabels | None = attrs.field(default=None, init=False)
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)
    _splitter: LineSplitter = attrs.field(init=False)
    _limiter: LineRateLimiter = attrs.field(init=False)
    _bytes_read: int = attrs.field(default=0, init=False)
    _progress: RepeatedEvent = attrs.field(factory=RepeatedEvent, init=False)
    _finished: bool = attrs.field(default=False, init=False)
    _unreported_truncated: int = attrs.field(default=0, init=False)
    _unreported_dropped: int = attrs.field(default=0, init=False)
    _report_at: float = attrs.field(default=math.inf, init=False)
    _reported_at: float = attrs.field(default=-math.inf, init=False)

    def __attrs_post_init__(self) -> None:
        self._splitter = LineSplitter(self.max_line_bytes)
        self._limiter = LineRateLimiter(self.lines_per_second, self.burst_lines)

    @property
    def finished(self) -> bool:
        """Whether the forwarder has stopped reading (end-of-file, stopped, or cancelled)."""
        return self._finished

    def attribute_to(self, labels: TaskLabels | None) -> None:
        """Tag the lines read from now on with ``labels`` (``None``: no task is running)."""
        self._labels = labels

    def stop_within(self, grace: float) -> None:
        """Stop reading ``grace`` seconds from now if end-of-file has not come by then."""
        self._scope.deadline = min(self._scope.deadline, trio.current_time() + grace)

    def has_unread(self) -> bool:
        """Whether the executor has written bytes the forwarder has not read yet."""
        return self._pending_bytes() > 0

    async def wait_caught_up(self) -> None:
        """Wait until every byte the executor has written so far has been read and logged.

        Called when the task a forwarder attributes lines to changes, so that lines are tagged
        with the task that was running when they were written.
        """
        target = self._bytes_read + self._pending_bytes()
        while self._bytes_read < target and not self._finished:
            await self._progress.wait()

    async def run(self) -> None:
        """Forward lines until end-of-file or ``stop_within``; closes the stream when done."""
        stopped = False
        try:
            with self._scope:
                await self._pump()
            stopped = self._scope.cancelled_caught
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            LOGGER.warning(
                "Executor stderr failed; stopped forwarding it.",
                extra={**self._fields(), "error": str(exc)},
            )
        finally:
            for line in self._splitter.finish():
                self._forward(line)
            self._report_losses()
            if stopped:
                LOGGER.warning(
                    "Stopped forwarding executor stderr: it stayed open after the executor "
                    "exited (a process the task started holds it).",
                    extra=self._fields(),
                )
            self._finished = True
            self._progress.set()
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    async def _pump(self) -> None:
        while True:
            chunk: bytes | bytearray | None = None
            with trio.move_on_at(self._report_at):
                chunk = await self.stream.receive_some(_READ_CHUNK)
            if chunk is None:
                self._report_losses()
                continue
            if not chunk:
                return
            self._bytes_read += len(chunk)
            for line in self._splitter.feed(bytes(chunk)):
                self._forward(line)
            if trio.current_time() >= self._report_at:
                self._report_losses()
            self._progress.set()

    def _forward(self, line: StderrLine) -> None:
        now = trio.current_time()
        if line.cut_bytes:
            self.lines_truncated += 1
            self._unreported_truncated += 1
            self._schedule_report(now)
        if not line.data:
            return
        if not self._limiter.allow(now):
            self.lines_dropped += 1
            self._unreported_dropped += 1
            self._schedule_report(now)
            return
        self.lines_forwarded += 1
        text = line.data.decode("utf-8", errors="replace")
        fields = self._fields()
        level = logging.INFO
        message = text
        if line.cut_bytes:
            fields["truncated_bytes"] = line.cut_bytes
        elif text.startswith("{"):
            entry = _json_object(text)
            if entry is not None:
                fields["executor"] = entry
                level = _level_of(entry)
                message = _message_of(entry, text)
        if LOGGER.isEnabledFor(level):
            LOGGER.log(level, message, extra=fields)

    def _schedule_report(self, now: float) -> None:
        if self._report_at == math.inf:
            self._report_at = max(now, self._reported_at + REPORT_INTERVAL)

    def _report_losses(self) -> None:
        if self._unreported_truncated:
            LOGGER.warning(
                "Truncated %d executor stderr lines longer than %d bytes.",
                self._unreported_truncated,
                self.max_line_bytes,
                extra={
                    **self._fields(),
                    "lines_truncated": self._unreported_truncated,
                    "max_line_bytes": self.max_line_bytes,
                },
            )
        if self._unreported_dropped:
            LOGGER.warning(
                "Dropped %d executor stderr lines over the rate cap of %g lines/s.",
                self._unreported_dropped,
                self.lines_per_second,
                extra={
                    **self._fields(),
                    "lines_dropped": self._unreported_dropped,
                    "lines_per_second": self.lines_per_second,
                },
            )
        self._unreported_truncated = self._unreported_dropped = 0
        self._reported_at = trio.current_time()
        self._report_at = math.inf

    def _fields(self) -> dict[str, Any]:
        fields = {"executor_id": self.executor_id, "slot": self.slot}
        if self._labels is not None:
            fields.update(self._labels.fields())
        return fields

    def _pending_bytes(self) -> int:
        if self._finished or not isinstance(self.stream, trio.lowlevel.FdStream):
            return 0
        try:
            raw = fcntl.ioctl(self.stream.fileno(), termios.FIONREAD, bytes(_PENDING.size))
        except (OSError, trio.ClosedResourceError):
            return 0
        (pending,) = _PENDING.unpack(raw)
        return int(pending)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _level_of(entry: dict[str, Any]) -> int:
    level = entry.get("level")
    return _LEVELS.get(level.upper(), logging.INFO) if isinstance(level, str) else logging.INFO


def _message_of(entry: dict[str, Any], text: str) -> str:
    # Our executor logs {"message": ...}; upstream's Rust executor {"fields": {"message": ...}}.
    message = entry.get("message")
    if isinstance(message, str):
        return message
    fields = entry.get("fields")
    if isinstance(fields, dict) and isinstance(fields.get("message"), str):
        return str(fields["message"])
    return text
