"""What both ends of ``spider.rpc``'s HTTP/2 connections share: the windows granted, the
flow-controlled send loop, gRPC's message prefix and the codecs of its ``grpc-timeout`` and
``grpc-message`` headers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from spider.rpc._frames import FramedConnection

READ_BYTES = 65536
"""The most bytes one read from the socket takes."""

WINDOW_BYTES = 4 * 1024 * 1024
"""The flow-control window each end grants per connection and per stream: what grpclib granted
(4 MiB), so a large request is not slowed by window updates every 64 KiB."""

MESSAGE_PREFIX_BYTES = 5
"""gRPC's length prefix: a compressed flag and a 4-byte big-endian length."""

SEND_STALL_SECONDS = 20.0
"""How long a write may wait for the peer to read before its connection is given up."""

_TIMEOUT = re.compile(rb"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def keep_one_message(body: bytearray, data: bytes, limit: int) -> bool:
    """Append ``data`` to ``body``, keeping only gRPC's prefix and the one message it announces
    (and none of a message over ``limit`` bytes: the reader refuses it from the prefix), so
    that a peer sending without end cannot grow ``body`` past that. Returns whether bytes past
    what is kept were dropped."""
    wanted = _kept_bytes(body, limit)
    if wanted is not None and len(body) >= wanted:
        return bool(data)
    body += data
    wanted = _kept_bytes(body, limit)
    if wanted is None or len(body) <= wanted:
        return False
    del body[wanted:]
    return True


def _kept_bytes(body: bytearray, limit: int) -> int | None:
    if len(body) < MESSAGE_PREFIX_BYTES:
        return None
    length = int.from_bytes(body[1:MESSAGE_PREFIX_BYTES], "big")
    return MESSAGE_PREFIX_BYTES + (length if length <= limit else 0)


def framed(message: bytes) -> bytes:
    """``message`` behind gRPC's length prefix (uncompressed)."""
    return b"\0" + len(message).to_bytes(4, "big") + message


async def send_in_windows(
    protocol: FramedConnection,
    stream_id: int,
    data: bytes,
    *,
    end_stream: bool,
    flush: Callable[[], Awaitable[None]],
    window_opened: Callable[[], Awaitable[None]],
    abandoned: Callable[[], bool] = lambda: False,
) -> None:
    """Queue ``data`` on the stream in pieces as the peer's flow-control windows allow.

    ``flush`` runs after each piece but the last (the caller sends what follows it) and before
    waiting for ``window_opened``; the last piece ends the stream if ``end_stream``. Stops early
    once ``abandoned()``: the peer has answered and reads no more.
    """
    view = memoryview(data)
    while not abandoned():
        size = min(
            protocol.local_flow_control_window(stream_id),
            protocol.max_outbound_frame_size,
            len(view),
        )
        if size <= 0:
            await flush()
            # The flush may have waited (for the socket, or another call's write), and a
            # WINDOW_UPDATE read meanwhile has already fired the event: wait only if the
            # window is still shut, with no checkpoint between the check and the wait.
            if protocol.local_flow_control_window(stream_id) <= 0 and not abandoned():
                await window_opened()
            continue
        last = size == len(view)
        protocol.send_data(stream_id, view[:size].tobytes(), end_stream=end_stream and last)
        if last:
            return
        view = view[size:]
        await flush()


def grpc_timeout(value: bytes) -> float | None:
    """Seconds from a ``grpc-timeout`` header (``100m``, ``5S``), or ``None`` if malformed."""
    match = _TIMEOUT.match(value)
    if match is None:
        return None
    return int(match[1]) * _TIMEOUT_UNITS[match[2]]


def percent_encoded(message: str) -> bytes:
    """``grpc-message``'s encoding: UTF-8, with bytes outside printable ASCII and ``%`` as
    ``%XX``."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def grpc_timeout_header(seconds: float) -> bytes:
    """``grpc-timeout``'s encoding of ``seconds``: at most 8 digits, in the finest unit that
    fits, rounded up so that the server's deadline is never earlier than the client's."""
    for unit, scale in ((b"n", 1e9), (b"u", 1e6), (b"m", 1e3), (b"S", 1.0), (b"M", 1 / 60)):
        value = -int(-seconds * scale // 1)
        if value < 100_000_000:
            return b"%d%s" % (max(value, 1), unit)
    return b"99999999H"
