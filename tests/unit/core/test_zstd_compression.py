"""zstd as Spider uses it: any valid stream decodes, garbage and bombs are refused."""

from __future__ import annotations

import contextlib
import threading

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from spider.core.compression import compress, decompress
from spider.core.errors import CodecError, CompressionError


@given(st.binary(max_size=4096))
def test_round_trip(data: bytes) -> None:
    assert decompress(compress(data)) == data


def test_frames_without_a_content_size_decode() -> None:
    # Spider's encoder streams, so its frames may not record the decompressed size.
    data = b"spider" * 10_000
    stream = zstandard.ZstdCompressor().compressobj()
    frame = stream.compress(data) + stream.flush()
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decompress(frame) == data


def test_concatenated_frames_decode_as_one_stream() -> None:
    assert decompress(compress(b"job ") + compress(b"inputs")) == b"job inputs"


def test_the_empty_input_is_rejected() -> None:
    with pytest.raises(CompressionError, match="the input is empty"):
        decompress(b"")


@pytest.mark.parametrize("garbage", [b"\x00", b"garbage", b"\x28\xb5\x2f\xfd", b"\xff" * 64])
def test_garbage_is_rejected(garbage: bytes) -> None:
    with pytest.raises(CompressionError, match="invalid zstd data"):
        decompress(garbage)


def test_a_valid_frame_followed_by_garbage_is_rejected() -> None:
    with pytest.raises(CompressionError):
        decompress(compress(b"ok") + b"trailing garbage")


def test_the_limit_is_inclusive() -> None:
    data = b"a" * 3_000_000  # more than one internal read chunk
    frame = compress(data)
    assert decompress(frame, limit=len(data)) == data
    with pytest.raises(CompressionError, match=f"more than the {len(data) - 1}-byte limit"):
        decompress(frame, limit=len(data) - 1)


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = compress(b"\x00" * (64 << 20))
    assert len(bomb) < 10_000
    with pytest.raises(CompressionError, match="limit"):
        decompress(bomb, limit=1 << 20)


@given(st.binary(min_size=1, max_size=256), st.data())
def test_corrupt_frames_decode_or_raise_a_codec_error(data: bytes, draw: st.DataObject) -> None:
    frame = bytearray(compress(data))
    position = draw.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= draw.draw(st.integers(1, 255))
    with contextlib.suppress(CodecError):
        decompress(bytes(frame))


@given(st.binary(min_size=1, max_size=64))
def test_arbitrary_bytes_decode_or_raise_a_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decompress(data)


def test_worker_threads_get_their_own_contexts() -> None:
    payloads = [bytes([n]) * (1000 + n) for n in range(8)]
    results: dict[int, bool] = {}

    def work(n: int) -> None:
        results[n] = all(decompress(compress(payloads[n])) == payloads[n] for _ in range(50))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == dict.fromkeys(range(len(payloads)), True)


@given(st.binary(max_size=512), st.data())
def test_every_truncation_is_rejected(data: bytes, draw: st.DataObject) -> None:
    frame = compress(data)
    cut = draw.draw(st.integers(1, len(frame) - 1))
    with pytest.raises(CompressionError, match="invalid zstd data"):
        decompress(frame[:cut])


def test_a_truncated_second_frame_is_rejected() -> None:
    second = compress(b"second frame")
    with pytest.raises(CompressionError, match="ends inside a frame"):
        decompress(compress(b"first frame") + second[:-3])


def test_skippable_frames_are_skipped() -> None:
    skippable = bytes.fromhex("502a4d18") + (3).to_bytes(4, "little") + b"xyz"
    assert decompress(skippable + compress(b"payload")) == b"payload"
