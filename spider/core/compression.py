"""zstd, as Spider uses it for task graphs, job inputs and large job outputs.

Upstream compresses with the library's default level and a streaming encoder, so frames may lack
the content size; decompression therefore streams, and stops at ``limit`` bytes so that a small
hostile input cannot expand without bound.
"""

from __future__ import annotations

import threading

import zstandard

from spider.core.errors import CompressionError

DEFAULT_DECOMPRESSED_LIMIT = 1 << 30
_INPUT_STEP = 1 << 10


class _Contexts(threading.local):
    """One compressor and one decompressor per thread.

    zstd contexts must not be used by two threads at once, and building one per call costs
    twenty times the work of compressing a small payload.
    """

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor()
        self.decompressor = zstandard.ZstdDecompressor()


_CONTEXTS = _Contexts()


def compress(data: bytes) -> bytes:
    """zstd-compress ``data`` at the library default level."""
    return _CONTEXTS.compressor.compress(data)


def decompress(
    data: bytes, *, limit: int = DEFAULT_DECOMPRESSED_LIMIT, setting: str | None = None
) -> bytes:
    """Decompress one or more concatenated zstd frames, refusing output over ``limit`` bytes
    (the refusal names ``setting``, the configuration key that sets the limit, if given).

    Input that ends inside a frame is an error (a plain stream reader would return the data
    decoded so far and say nothing).
    """
    if not data:
        raise CompressionError("invalid zstd data: the input is empty")
    view = memoryview(data)
    chunks: list[bytes] = []
    total = 0
    offset = 0
    try:
        while offset < len(view):
            # One decompressobj per frame: its `eof` tells whether the frame was complete.
            frame = _CONTEXTS.decompressor.decompressobj()
            while not frame.eof:
                if offset >= len(view):
                    raise CompressionError(
                        "invalid zstd data: the input ends inside a frame (truncated?)"
                    )
                # Small input steps bound how far one call can overshoot the limit: a zstd
                # block may expand 32768-fold.
                step = view[offset : offset + _INPUT_STEP]
                offset += len(step)
                chunk = frame.decompress(step)
                total += len(chunk)
                if total > limit:
                    where = f" (setting {setting})" if setting else ""
                    raise CompressionError(
                        f"zstd data decompresses to more than the {limit}-byte limit{where}"
                    )
                chunks.append(chunk)
            offset -= len(frame.unused_data)
    except zstandard.ZstdError as exc:
        raise CompressionError(f"invalid zstd data: {exc}") from exc
    return b"".join(chunks)
