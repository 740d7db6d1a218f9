"""``SerializedTaskOutputs``: an option byte, then a wire frame (0) or zstd of it (1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.core.compression import compress
from spider.core.errors import CodecError, TaskOutputsFormatError
from spider.core.task_outputs import (
    COMPRESSION_THRESHOLD,
    OPTION_WIRE,
    OPTION_ZSTD_WIRE,
    decode_task_outputs,
    encode_task_outputs,
)
from spider.core.wire import decode_frame, encode_frame

payload_lists = st.lists(st.binary(max_size=600), max_size=6)


@given(payload_lists)
def test_round_trip_picks_the_option_from_the_payload_size(payloads: list[bytes]) -> None:
    raw = encode_task_outputs(payloads)
    compressed = sum(map(len, payloads)) > COMPRESSION_THRESHOLD
    assert raw[0] == (OPTION_ZSTD_WIRE if compressed else OPTION_WIRE)
    assert decode_task_outputs(raw) == payloads


def test_exactly_1024_payload_bytes_stay_a_plain_frame() -> None:
    payloads = [b"a" * 1000, b"b" * 24]
    raw = encode_task_outputs(payloads)
    assert raw == bytes([OPTION_WIRE]) + encode_frame(payloads)


def test_1025_payload_bytes_are_compressed() -> None:
    payloads = [b"a" * 1000, b"b" * 25]
    raw = encode_task_outputs(payloads)
    assert raw[0] == OPTION_ZSTD_WIRE
    # Headers do not count towards the threshold, and the body is zstd of the whole frame.
    assert len(encode_frame(payloads)) > len(raw)
    assert decode_task_outputs(raw) == payloads


def test_the_empty_list_is_option_zero_and_the_empty_frame() -> None:
    assert encode_task_outputs([]) == bytes.fromhex("00 00000000")
    assert decode_task_outputs(bytes.fromhex("00 00000000")) == []


def test_a_zstd_body_written_by_another_encoder_decodes() -> None:
    frame = encode_frame([b"\x01", b"\x02"])
    assert decode_task_outputs(bytes([OPTION_ZSTD_WIRE]) + compress(frame)) == [b"\x01", b"\x02"]


def test_option_one_is_accepted_even_below_the_threshold() -> None:
    # Readers must not second-guess the writer's choice.
    raw = bytes([OPTION_ZSTD_WIRE]) + compress(encode_frame([b"x"]))
    assert decode_task_outputs(raw) == [b"x"]


def test_empty_raw_is_rejected() -> None:
    with pytest.raises(TaskOutputsFormatError, match="empty"):
        decode_task_outputs(b"")


def test_unknown_option_42_is_rejected() -> None:
    with pytest.raises(TaskOutputsFormatError, match="unknown option byte 42"):
        decode_task_outputs(bytes([42]) + encode_frame([]))


def test_a_bad_frame_under_option_zero_names_the_option() -> None:
    with pytest.raises(TaskOutputsFormatError, match=r"option 0\): invalid wire frame"):
        decode_task_outputs(bytes([OPTION_WIRE]) + b"\x01\x00")


def test_a_bad_zstd_body_is_a_task_outputs_error() -> None:
    with pytest.raises(TaskOutputsFormatError, match=r"option 1\): invalid zstd data"):
        decode_task_outputs(bytes([OPTION_ZSTD_WIRE]) + b"not zstd")


def test_the_decompression_limit_applies() -> None:
    raw = encode_task_outputs([b"z" * 5000])
    with pytest.raises(TaskOutputsFormatError, match="limit"):
        decode_task_outputs(raw, limit=1000)


@given(payload_lists, st.data())
def test_truncations_raise_a_task_outputs_error(payloads: list[bytes], data: st.DataObject) -> None:
    raw = encode_task_outputs(payloads)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(TaskOutputsFormatError):
        decode_task_outputs(raw[:cut])


@given(payload_lists, st.data())
def test_corrupt_bytes_decode_or_raise_a_codec_error(
    payloads: list[bytes], data: st.DataObject
) -> None:
    raw = bytearray(encode_task_outputs(payloads))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_task_outputs(bytes(raw))
    except CodecError:
        return
    assert all(isinstance(payload, bytes) for payload in decoded)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_a_codec_error(raw: bytes) -> None:
    try:
        decoded = decode_task_outputs(raw)
    except CodecError:
        return
    if raw[0] == OPTION_WIRE:
        assert decode_frame(raw[1:]) == decoded
