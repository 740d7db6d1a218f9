"""Job inputs on the wire: zstd of a wire frame, one msgpack payload per graph input."""

from __future__ import annotations

from collections.abc import Sequence

from spider.core.compression import DEFAULT_DECOMPRESSED_LIMIT, compress, decompress
from spider.core.errors import CompressionError, WireFormatError
from spider.core.wire import decode_frame, encode_frame


def encode_job_inputs(payloads: Sequence[bytes]) -> bytes:
    """``RegisterJob.compressed_serialized_inputs`` for ``payloads`` in graph-input order."""
    return compress(encode_frame(payloads))


def decode_job_inputs(
    data: bytes,
    *,
    expected: int,
    limit: int = DEFAULT_DECOMPRESSED_LIMIT,
    setting: str | None = None,
) -> list[bytes]:
    """The msgpack payloads of compressed job inputs; there must be ``expected`` of them.

    Raises ``CompressionError`` or ``WireFormatError`` whose message starts with
    "invalid job inputs".
    """
    try:
        return decode_frame(decompress(data, limit=limit, setting=setting), expected=expected)
    except CompressionError as exc:
        raise CompressionError(f"invalid job inputs: {exc}") from exc
    except WireFormatError as exc:
        raise WireFormatError(
            f"invalid job inputs (the task graph takes {expected}): {exc}"
        ) from exc
