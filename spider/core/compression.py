"""zstd, as Spider uses it for task graphs, job inputs and large job outputs.

Upstream compresses with the library's default level and a streaming encoder, so frames may lack
the content size; decompression therefore streams, and stops at ``limit`` bytes so that a small
hostile input cannot expand without bound.
"""

from __future__ import annotations

import zstandard

from spider.core.errors import CompressionError

DEFAULT_DECOMPRESSED_LIMIT = 1 << 30

_COMPRESSOR = zstandard.ZstdCompressor()
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def compress(data: bytes) -> bytes:
    """zstd-compress ``data`` at the library default level."""
    return _COMPRESSOR.compress(data)


def decompress(data: bytes, *, limit: int = DEFAULT_DECOMPRESSED_LIMIT) -> bytes:
    """Decompress one or more concatenated zstd frames, refusing output over ``limit`` bytes."""
    if not data:
        raise CompressionError("invalid zstd data: the input is empty")
    try:
        reader = _DECOMPRESSOR.stream_reader(data, read_across_frames=True)
        with reader:
            out = reader.read(limit + 1)
            # A stream_reader's read() may return short; keep reading until EOF or over limit.
            chunks = [out]
            total = len(out)
            while out and total <= limit:
                out = reader.read(limit + 1 - total)
                chunks.append(out)
                total += len(out)
    except zstandard.ZstdError as exc:
        raise CompressionError(f"invalid zstd data: {exc}") from exc
    if total > limit:
        raise CompressionError(f"zstd data decompresses to more than the {limit}-byte limit")
    return b"".join(chunks)
