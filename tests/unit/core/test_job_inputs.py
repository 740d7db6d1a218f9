"""Job inputs (zstd of a wire frame) and the checks ``RegisterJob`` applies to a submission."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.core.compression import compress, decompress
from spider.core.data_types import DataType, IntType
from spider.core.errors import CodecError, CompressionError, TaskGraphError, WireFormatError
from spider.core.task_graph import (
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    decode_job_inputs,
    decode_job_submission,
    encode_job_inputs,
    encode_task_graph,
)
from spider.core.wire import encode_frame

payload_lists = st.lists(st.binary(max_size=64), max_size=8)


@given(payload_lists)
def test_round_trip(payloads: list[bytes]) -> None:
    data = encode_job_inputs(payloads)
    assert decompress(data) == encode_frame(payloads)
    assert decode_job_inputs(data, expected=len(payloads)) == payloads


def test_the_payload_count_must_match_the_graph() -> None:
    data = encode_job_inputs([b"\x01"])
    with pytest.raises(
        WireFormatError,
        match=r"invalid job inputs \(the task graph takes 2\): .*expected 2 payloads, got 1",
    ):
        decode_job_inputs(data, expected=2)


def test_inputs_that_are_not_zstd_are_a_compression_error() -> None:
    with pytest.raises(CompressionError, match="invalid job inputs: invalid zstd data"):
        decode_job_inputs(encode_frame([b"\x01"]), expected=1)
    with pytest.raises(CompressionError, match="invalid job inputs"):
        decode_job_inputs(b"", expected=0)


def test_a_corrupt_frame_inside_valid_zstd_is_a_wire_error() -> None:
    with pytest.raises(WireFormatError, match="invalid job inputs"):
        decode_job_inputs(compress(b"\x01\x00\x00\x00\x09"), expected=1)


def test_the_limit_applies() -> None:
    data = encode_job_inputs([b"\x00" * 10_000])
    with pytest.raises(CompressionError, match="limit"):
        decode_job_inputs(data, expected=1, limit=1000)


@given(payload_lists, st.data())
def test_corrupt_inputs_decode_or_raise_a_codec_error(
    payloads: list[bytes], data: st.DataObject
) -> None:
    raw = bytearray(encode_job_inputs(payloads))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(CodecError):
        decode_job_inputs(bytes(raw), expected=len(payloads))


INT = DataType(IntType())


def two_input_graph() -> TaskGraph:
    graph = TaskGraph()
    graph.insert_task(TaskDescriptor(TdlContext("p", "add"), [INT, INT], [INT]))
    return graph


def test_a_valid_submission_decodes() -> None:
    submission = decode_job_submission(
        encode_task_graph(two_input_graph()), encode_job_inputs([b"\x01", b"\x02"])
    )
    assert submission.task_graph.same_as(two_input_graph())
    assert submission.inputs == (b"\x01", b"\x02")


def test_an_empty_graph_is_not_a_job() -> None:
    with pytest.raises(TaskGraphError, match="a job needs at least one task"):
        decode_job_submission(encode_task_graph(TaskGraph()), encode_job_inputs([]))


def test_a_submission_needs_one_input_per_graph_input() -> None:
    with pytest.raises(WireFormatError, match="expected 2 payloads, got 1"):
        decode_job_submission(encode_task_graph(two_input_graph()), encode_job_inputs([b"\x01"]))
