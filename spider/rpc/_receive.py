"""How a server reads a call's request, and bounds the status message it answers with.

Client mistakes at this layer (a body that does not decode, a truncated or oversized one) are
answered INVALID_ARGUMENT or RESOURCE_EXHAUSTED and logged as one WARNING line, at most a few per
client host a minute (``PeerLogLimit``); they never reach a handler and never become UNKNOWN
(docs/limits.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import grpclib.server
from google.protobuf.message import DecodeError
from grpclib.exceptions import GRPCError

from spider.core.bounds import MAX_STATUS_MESSAGE_CHARS, QUOTE_CHARS, truncated
from spider.rpc._log_limit import PeerLogLimit, left_out_note
from spider.rpc.errors import Status

LOGGER = logging.getLogger("spider.rpc")


def bounded_status_message(message: str) -> str:
    """``message`` cut to ``MAX_STATUS_MESSAGE_CHARS``: HPACK-encoding a trailer of a million
    characters stalls the asyncio thread that serves every client for over a minute."""
    return truncated(message, MAX_STATUS_MESSAGE_CHARS)


_FRAME_HEADER_BYTES = 5
"""gRPC's length prefix: a compressed flag and a 4-byte big-endian length."""


async def receive_request(
    stream: grpclib.server.Stream[Any, Any],
    route: str,
    max_request_bytes: int,
    refusals: PeerLogLimit,
) -> object:
    """The call's one request message, or the ``GRPCError`` a client mistake answers with.

    grpclib's ``recv_message`` (0.4.9) reads a message of any announced length into memory and
    lets a body that does not decode escape as UNKNOWN with a traceback. Here the length is
    checked before the body is read (RESOURCE_EXHAUSTED) and a missing, truncated, compressed or
    undecodable body is INVALID_ARGUMENT, logged as one WARNING line.
    """
    h2_stream = stream._stream
    header = await h2_stream.recv_data(_FRAME_HEADER_BYTES)
    if len(header) < _FRAME_HEADER_BYTES:
        _refuse(
            stream,
            refusals,
            route,
            Status.INVALID_ARGUMENT,
            "the call ended without a request message",
        )
    if header[0]:
        _refuse(
            stream,
            refusals,
            route,
            Status.INVALID_ARGUMENT,
            "the request is compressed; this server accepts only uncompressed messages",
        )
    length = int.from_bytes(header[1:], "big")
    if length > max_request_bytes:
        _refuse(
            stream,
            refusals,
            route,
            Status.RESOURCE_EXHAUSTED,
            f"the request is {length} bytes, over the server's limit of {max_request_bytes} "
            "bytes (max_request_bytes; storage: runtime.limits.max_request_bytes)",
        )
    body = await h2_stream.recv_data(length)
    if len(body) != length:
        _refuse(
            stream,
            refusals,
            route,
            Status.INVALID_ARGUMENT,
            f"the request message is truncated: {len(body)} of {length} bytes arrived",
        )
    try:
        message = stream._codec.decode(body, stream._recv_type)
    except (DecodeError, ValueError) as exc:
        _refuse(
            stream,
            refusals,
            route,
            Status.INVALID_ARGUMENT,
            f"the request is not a valid {stream._recv_type.__name__}: "
            f"{truncated(str(exc), QUOTE_CHARS)}",
        )
    # What grpclib's recv_message does besides decoding (events, keepalive bookkeeping).
    (message,) = await stream._dispatch.recv_message(message)
    stream._messages_received += 1
    stream._stream.connection.messages_received += 1
    stream._stream.connection.last_message_received = time.monotonic()
    return message


def _refuse(
    stream: grpclib.server.Stream[Any, Any],
    refusals: PeerLogLimit,
    route: str,
    status: Status,
    message: str,
) -> NoReturn:
    peer = stream.peer.addr() if stream.peer is not None else None
    left_out = refusals.admit(peer)
    if left_out is not None:
        LOGGER.warning(
            "%s answered %s to %s: %s%s",
            route,
            status.name,
            peer,
            message,
            left_out_note(left_out),
            extra={
                "rpc_method": route,
                "rpc_status": status.name,
                "rpc_peer": peer,
                "rpc_lines_left_out": left_out,
            },
        )
    raise GRPCError(status, message)
