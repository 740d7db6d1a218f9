"""The wire frame: ``[count u32 LE]([len u32 LE][payload])*``, byte for byte as Spider frames."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.core.errors import CodecError, WireFormatError
from spider.core.wire import EMPTY_FRAME, decode_frame, encode_frame

payload_lists = st.lists(st.binary(max_size=64), max_size=8)


def test_one_int_input_is_spiders_example_bytes() -> None:
    # docs/upstream.md#task-data-formats: inputs [10] (msgpack 0x0a).
    assert encode_frame([b"\x0a"]) == bytes.fromhex("01000000 01000000 0a")
    assert decode_frame(bytes.fromhex("01000000 01000000 0a")) == [b"\x0a"]


def test_one_output_is_spiders_example_bytes() -> None:
    assert encode_frame([b"\x37"]) == bytes.fromhex("01000000 01000000 37")


def test_the_empty_frame_is_four_zero_bytes() -> None:
    assert encode_frame([]) == EMPTY_FRAME == b"\x00\x00\x00\x00"
    assert decode_frame(EMPTY_FRAME) == []


def test_payloads_keep_their_order_and_lengths() -> None:
    frame = encode_frame([b"ab", b"", b"cde"])
    assert frame == bytes.fromhex("03000000 02000000 6162 00000000 03000000 636465")


@given(payload_lists)
def test_round_trip(payloads: list[bytes]) -> None:
    assert decode_frame(encode_frame(payloads)) == payloads


@given(payload_lists)
def test_bytearray_and_memoryview_decode_like_bytes(payloads: list[bytes]) -> None:
    frame = encode_frame(payloads)
    assert decode_frame(bytearray(frame)) == payloads
    assert decode_frame(memoryview(frame)) == payloads


def test_length_mismatch_names_both_counts() -> None:
    frame = encode_frame([b"\x01", b"\x02"])
    with pytest.raises(WireFormatError, match="expected 3 payloads, got 2"):
        decode_frame(frame, expected=3)
    assert decode_frame(frame, expected=2) == [b"\x01", b"\x02"]


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_buffer_shorter_than_the_header_is_rejected(size: int) -> None:
    with pytest.raises(WireFormatError, match=f"{size} bytes is too small"):
        decode_frame(b"\x01" * size)


@given(st.lists(st.binary(max_size=16), min_size=1, max_size=4), st.data())
def test_every_truncation_is_rejected(payloads: list[bytes], data: st.DataObject) -> None:
    frame = encode_frame(payloads)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(WireFormatError):
        decode_frame(frame[:cut])


def test_truncated_payload_says_how_much_is_missing() -> None:
    with pytest.raises(WireFormatError, match="payload 0 claims 5 bytes, only 2 remain"):
        decode_frame(bytes.fromhex("01000000 05000000 6162"))


def test_truncated_length_header_is_named() -> None:
    # Two payloads declared; the second one's length header is cut after two bytes.
    frame = bytes.fromhex("02000000 04000000 61626364 0000")
    with pytest.raises(WireFormatError, match="end of buffer reading the length of payload 1"):
        decode_frame(frame)


@given(payload_lists, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(payloads: list[bytes], trailer: bytes) -> None:
    with pytest.raises(WireFormatError, match="unexpected bytes after the last"):
        decode_frame(encode_frame(payloads) + trailer)


def test_a_huge_count_is_rejected_before_allocating() -> None:
    frame = struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 12
    with pytest.raises(WireFormatError, match="header says 4294967295 payloads"):
        decode_frame(frame)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_a_codec_error(data: bytes) -> None:
    try:
        payloads = decode_frame(data)
    except CodecError:
        return
    assert encode_frame(payloads) == data


@given(payload_lists, st.data())
def test_flipped_bytes_decode_or_raise_a_codec_error(
    payloads: list[bytes], data: st.DataObject
) -> None:
    frame = bytearray(encode_frame(payloads))
    position = data.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_frame(bytes(frame))
    except CodecError:
        return
    assert encode_frame(decoded) == bytes(frame)
