"""``SerializedTaskOutputs``: job outputs as Spider stores and returns them.

One option byte, then the payload: ``0`` = a plain wire frame, ``1`` = zstd of the wire frame.
The writer compresses when the payloads' total size exceeds 1024 bytes, as upstream does.
"""

from __future__ import annotations

from collections.abc import Sequence

from spider.core.compression import DEFAULT_DECOMPRESSED_LIMIT, compress, decompress
from spider.core.errors import CodecError, TaskOutputsFormatError
from spider.core.wire import decode_frame, encode_frame

OPTION_WIRE = 0
OPTION_ZSTD_WIRE = 1
COMPRESSION_THRESHOLD = 1024


def encode_task_outputs(payloads: Sequence[bytes]) -> bytes:
    """Encode msgpack payloads (in graph-output order) as ``SerializedTaskOutputs``."""
    frame = encode_frame(payloads)
    if sum(len(payload) for payload in payloads) > COMPRESSION_THRESHOLD:
        return bytes([OPTION_ZSTD_WIRE]) + compress(frame)
    return bytes([OPTION_WIRE]) + frame


def decode_task_outputs(data: bytes, *, limit: int = DEFAULT_DECOMPRESSED_LIMIT) -> list[bytes]:
    """Decode ``SerializedTaskOutputs`` into its msgpack payloads."""
    if not data:
        raise TaskOutputsFormatError("invalid task outputs: the buffer is empty (no option byte)")
    option, body = data[0], data[1:]
    try:
        if option == OPTION_WIRE:
            return decode_frame(body)
        if option == OPTION_ZSTD_WIRE:
            return decode_frame(decompress(body, limit=limit))
    except CodecError as exc:
        raise TaskOutputsFormatError(f"invalid task outputs (option {option}): {exc}") from exc
    raise TaskOutputsFormatError(
        f"invalid task outputs: unknown option byte {option} (expected 0 or 1)"
    )
