"""The wire frame: how Spider carries a list of msgpack payloads (task inputs and outputs).

Layout: ``[count: u32 LE]`` then, per payload, ``[len: u32 LE][bytes]``. The empty frame is
``00 00 00 00``. Payloads are opaque here; each is the msgpack encoding of one value.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from spider.core.errors import WireFormatError
from spider.core.ids import U32_MAX

EMPTY_FRAME = b"\x00\x00\x00\x00"

_U32 = struct.Struct("<I")


def encode_frame(payloads: Sequence[bytes]) -> bytes:
    """Frame ``payloads`` in order."""
    if len(payloads) > U32_MAX:
        raise WireFormatError(f"a wire frame holds at most {U32_MAX} payloads, got {len(payloads)}")
    parts = [_U32.pack(len(payloads))]
    for payload in payloads:
        if len(payload) > U32_MAX:
            raise WireFormatError(f"a payload of {len(payload)} bytes does not fit a wire frame")
        parts.append(_U32.pack(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def decode_frame(
    data: bytes | bytearray | memoryview, *, expected: int | None = None
) -> list[bytes]:
    """Split a wire frame into its payloads.

    ``expected`` is the number of payloads the caller needs (a task's parameter count); a
    different count is an error that names both numbers. Bytes after the last payload are an
    error too: a frame that does not end where its header says it ends is corrupt.
    """
    view = memoryview(data)
    size = len(view)
    if size < _U32.size:
        raise WireFormatError(
            f"invalid wire frame: {size} bytes is too small for the payload count header"
        )
    (count,) = _U32.unpack_from(view, 0)
    if expected is not None and count != expected:
        raise WireFormatError(f"invalid wire frame: expected {expected} payloads, got {count}")
    # Every payload needs at least its length header: reject absurd counts before allocating.
    if count * _U32.size > size - _U32.size:
        raise WireFormatError(
            f"invalid wire frame: header says {count} payloads but only {size} bytes follow"
        )
    offset = _U32.size
    payloads: list[bytes] = []
    for position in range(count):
        if offset + _U32.size > size:
            raise WireFormatError(
                f"invalid wire frame: unexpected end of buffer reading the length of payload {position}"
            )
        (length,) = _U32.unpack_from(view, offset)
        offset += _U32.size
        end = offset + length
        if end > size:
            raise WireFormatError(
                f"invalid wire frame: payload {position} claims {length} bytes, "
                f"only {size - offset} remain"
            )
        payloads.append(bytes(view[offset:end]))
        offset = end
    if offset != size:
        raise WireFormatError(
            f"invalid wire frame: {size - offset} unexpected bytes after the last of {count} payloads"
        )
    return payloads
