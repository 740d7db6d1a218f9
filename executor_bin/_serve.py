"""The executor's request loop: one request at a time until end-of-file or ``Shutdown``."""

from __future__ import annotations

import logging

from executor_bin._channel import FrameChannel, OversizedFrame
from executor_bin._lifeline import Lifeline
from executor_bin._runner import TaskRunner
from spider.executor.errors import ExecutorProtocolError
from spider.executor.exit_status import EXIT_OK, EXIT_PROTOCOL_ERROR
from spider.executor.protocol import (
    Execute,
    FrameKind,
    TaskOutcome,
    TooLarge,
    decode_request,
    encode_response,
)

_LOG = logging.getLogger("spider.executor")


def serve(channel: FrameChannel, runner: TaskRunner, lifeline: Lifeline) -> int:
    """Answer requests until the parent closes stdin or asks to stop; returns the exit code.

    A request read after the parent hung up runs no task: nobody is left to take its result.

    A body that does not decode ends the executor with ``EXIT_PROTOCOL_ERROR``. The framing
    would let it skip the frame and answer, but a parent that sends garbage cannot be trusted
    to read the answer either, and the parent already handles an executor exit (as a crash).
    """
    # Checked once: nothing on the hot path formats a log record unless DEBUG is on.
    debug = _LOG.isEnabledFor(logging.DEBUG)
    while True:
        try:
            body = channel.read_frame()
            if body is None:
                _LOG.info("Stdin closed; stopping.")
                return EXIT_OK
            if isinstance(body, OversizedFrame):
                _reply_request_too_large(channel, body.size)
                continue
            request = decode_request(body)
        except ExecutorProtocolError as exc:
            _LOG.error("Protocol error; exiting.", extra={"error": str(exc)})
            return EXIT_PROTOCOL_ERROR
        if not isinstance(request, Execute):
            _LOG.info("Received shutdown request.")
            return EXIT_OK
        if debug:
            _LOG.debug(
                "Executing task.",
                extra={"package": request.package, "task_func": request.task_func},
            )
        if not lifeline.begin_task():
            _LOG.info("Stdin closed; stopping.")
            return EXIT_OK
        try:
            outcome = runner.run(request)
        finally:
            lifeline.end_task()
        if debug:
            _LOG.debug(
                "Task done.",
                extra={"outcome": type(outcome).__name__, "elapsed_us": outcome.elapsed_us},
            )
        _reply(channel, outcome)


def _reply_request_too_large(channel: FrameChannel, size: int) -> None:
    limit = channel.max_frame_bytes
    _LOG.warning("Discarded a request frame over the limit.", extra={"size": size, "limit": limit})
    # No task ran: like the parent's own refusal, it reports no executor time.
    _reply(channel, TooLarge(FrameKind.REQUEST, size, limit, elapsed_us=0))


def _reply(channel: FrameChannel, outcome: TaskOutcome) -> None:
    body = encode_response(outcome)
    limit = channel.max_frame_bytes
    if len(body) > limit:
        _LOG.warning(
            "A response frame is over the limit; sending TooLarge instead.",
            extra={"size": len(body), "limit": limit},
        )
        body = encode_response(TooLarge(FrameKind.RESPONSE, len(body), limit, outcome.elapsed_us))
    channel.write_frame(body)
