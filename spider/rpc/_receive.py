"""How a server reads a call's request, and bounds the status message it answers with.

Client mistakes at this layer (a body that does not decode, a truncated or oversized one) are
answered INVALID_ARGUMENT or RESOURCE_EXHAUSTED and logged as one WARNING line, at most a few per
client host a minute (``PeerLogLimit``); they never reach a handler and never become UNKNOWN
(docs/limits.md).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from google.protobuf.message import DecodeError

from spider.core.bounds import MAX_STATUS_MESSAGE_CHARS, QUOTE_CHARS, truncated
from spider.rpc._http2 import MESSAGE_PREFIX_BYTES
from spider.rpc._log_limit import PeerLogLimit, left_out_note
from spider.rpc._mapping import error_for_status
from spider.rpc._server_connection import ServerCall
from spider.rpc.errors import Status

LOGGER = logging.getLogger("spider.rpc")


def bounded_status_message(message: str) -> str:
    """``message`` cut to ``MAX_STATUS_MESSAGE_CHARS``: HPACK-encoding a trailer of a million
    characters stalls the thread that serves every client for over a minute."""
    return truncated(message, MAX_STATUS_MESSAGE_CHARS)


async def receive_request(
    call: ServerCall,
    request_type: type[Any],
    max_request_bytes: int,
    refusals: PeerLogLimit,
) -> object:
    """The call's one request message, or the ``RpcError`` a client mistake answers with.

    The length is checked before the body is kept (RESOURCE_EXHAUSTED), and a missing,
    truncated, compressed or undecodable body is INVALID_ARGUMENT, logged as one WARNING line.
    """
    header = await call.receive(MESSAGE_PREFIX_BYTES)
    if len(header) < MESSAGE_PREFIX_BYTES:
        _refuse(
            call,
            refusals,
            Status.INVALID_ARGUMENT,
            "the call ended without a request message",
        )
    if header[0]:
        _refuse(
            call,
            refusals,
            Status.INVALID_ARGUMENT,
            "the request is compressed; this server accepts only uncompressed messages",
        )
    length = int.from_bytes(header[1:], "big")
    if length > max_request_bytes:
        _refuse(
            call,
            refusals,
            Status.RESOURCE_EXHAUSTED,
            f"the request is {length} bytes, over the server's limit of {max_request_bytes} "
            "bytes (max_request_bytes; storage: runtime.limits.max_request_bytes)",
        )
    framed = await call.receive(MESSAGE_PREFIX_BYTES + length)
    body = framed[MESSAGE_PREFIX_BYTES:]
    if len(body) != length:
        _refuse(
            call,
            refusals,
            Status.INVALID_ARGUMENT,
            f"the request message is truncated: {len(body)} of {length} bytes arrived",
        )
    try:
        return request_type.FromString(body)
    except (DecodeError, ValueError) as exc:
        _refuse(
            call,
            refusals,
            Status.INVALID_ARGUMENT,
            f"the request is not a valid {request_type.__name__}: "
            f"{truncated(str(exc), QUOTE_CHARS)}",
        )


def _refuse(
    call: ServerCall,
    refusals: PeerLogLimit,
    status: Status,
    message: str,
) -> NoReturn:
    peer = call.peer
    route = call.route
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
    raise error_for_status(status, message, method=route)
