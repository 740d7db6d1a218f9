"""The executor protocol codec: byte examples, round trips, and rejection of corrupt bodies."""

from __future__ import annotations

import contextlib

import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.executor import (
    ExecutorProtocolError,
    FrameTooLargeError,
)
from spider.executor.exit_status import ExecutorExitStatus
from spider.executor.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Execute,
    Failure,
    FrameKind,
    Ready,
    Request,
    Response,
    Shutdown,
    Success,
    TooLarge,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    frame,
    validate_max_frame_bytes,
)

U64 = st.integers(min_value=0, max_value=2**64 - 1)
# Sizes that cross every msgpack length-header boundary (fix, 8, 16 and 32 bits).
TEXT = st.one_of(st.text(max_size=40), st.text(min_size=250, max_size=300), st.just("é" * 70_000))
BLOBS = st.one_of(st.binary(max_size=40), st.binary(min_size=250, max_size=300))

REQUESTS: st.SearchStrategy[Request] = st.one_of(
    st.builds(Execute, TEXT, TEXT, BLOBS, BLOBS), st.just(Shutdown())
)
RESPONSES: st.SearchStrategy[Response] = st.one_of(
    st.builds(Ready, U64, U64, U64),
    st.builds(Success, BLOBS, U64),
    st.builds(Failure, TEXT, TEXT, st.none() | TEXT, st.none() | TEXT, U64),
    st.builds(TooLarge, st.sampled_from(FrameKind), U64, U64, U64),
)

CTX = bytes.fromhex("952a81a5496e646578000107c0")  # TaskContext(42, Index(0), 1, 7, nil)
INPUTS = bytes.fromhex("01000000010000000a")  # wire frame [msgpack 10]


def test_execute_byte_example() -> None:
    data = frame(encode_request(Execute("pkg", "fn", CTX, INPUTS)), DEFAULT_MAX_FRAME_BYTES)
    assert data == bytes.fromhex(
        "000000239501a3706b67a2666ec40d" + CTX.hex() + "c409" + INPUTS.hex()
    )
    assert decode_request(data[4:]) == Execute("pkg", "fn", CTX, INPUTS)


@pytest.mark.parametrize(
    ("message", "hex_frame"),
    [
        (Ready(1, 4242, 8388608), "0000000b 94 10 01 cd1092 ce00800000"),
        (
            Success(bytes.fromhex("010000000100000037"), 158),
            "0000000f 93 11 c409010000000100000037 cc9e",
        ),
        (
            Failure("execution", "ValueError: boom", "ValueError", None, 7),
            "0000002a 96 12 a9657865637574696f6e b056616c75654572726f723a20626f6f6d"
            "aa56616c75654572726f72 c0 07",
        ),
        (
            TooLarge(FrameKind.RESPONSE, 9_000_000, 8_388_608, 12),
            "00000016 95 13 a8726573706f6e7365 ce00895440 ce00800000 0c",
        ),
    ],
)
def test_response_byte_examples(message: Response, hex_frame: str) -> None:
    data = frame(encode_response(message), DEFAULT_MAX_FRAME_BYTES)
    assert data == bytes.fromhex(hex_frame.replace(" ", ""))
    assert decode_response(data[4:]) == message


def test_shutdown_byte_example() -> None:
    assert frame(encode_request(Shutdown()), DEFAULT_MAX_FRAME_BYTES) == bytes.fromhex(
        "000000029102"
    )


@given(REQUESTS)
def test_requests_round_trip(request: Request) -> None:
    assert decode_request(encode_request(request)) == request
    assert decode_request(memoryview(encode_request(request))) == request


@given(RESPONSES)
def test_responses_round_trip(response: Response) -> None:
    assert decode_response(encode_response(response)) == response
    assert decode_response(bytearray(encode_response(response))) == response


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_a_protocol_error(data: bytes) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(ExecutorProtocolError):
            decode(data)


@settings(max_examples=200)
@given(st.one_of(REQUESTS.map(encode_request), RESPONSES.map(encode_response)), st.data())
def test_corrupted_bodies_decode_or_raise_a_protocol_error(
    body: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(body) - 1))
    corrupted = bytearray(body)
    corrupted[position] ^= data.draw(st.integers(1, 255))
    for decode in (decode_request, decode_response):
        with contextlib.suppress(ExecutorProtocolError):
            decode(bytes(corrupted))


@given(st.one_of(REQUESTS.map(encode_request), RESPONSES.map(encode_response)), st.data())
def test_truncated_bodies_are_rejected(body: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(body) - 1))
    for decode in (decode_request, decode_response):
        with pytest.raises(ExecutorProtocolError):
            decode(body[:cut])


@given(REQUESTS, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(request: Request, extra: bytes) -> None:
    with pytest.raises(ExecutorProtocolError, match="trailing bytes"):
        decode_request(encode_request(request) + extra)


@given(RESPONSES, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_after_a_response_are_rejected(response: Response, extra: bytes) -> None:
    with pytest.raises(ExecutorProtocolError, match="trailing bytes"):
        decode_response(encode_response(response) + extra)


@given(REQUESTS)
def test_a_request_is_not_a_response(request: Request) -> None:
    with pytest.raises(ExecutorProtocolError, match="unknown message tag"):
        decode_response(encode_request(request))


@given(RESPONSES)
def test_a_response_is_not_a_request(response: Response) -> None:
    with pytest.raises(ExecutorProtocolError, match="unknown message tag"):
        decode_request(encode_response(response))


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"\xc1", "not msgpack"),
        (b"", "not msgpack"),
        (ormsgpack.packb({"tag": 1}), "expected a non-empty msgpack array, got a dict"),
        (ormsgpack.packb([]), "expected a non-empty msgpack array"),
        (ormsgpack.packb([True, "p", "f", b"", b""]), "unknown message tag True"),
        (ormsgpack.packb(["1", "p", "f", b"", b""]), "unknown message tag '1'"),
        (ormsgpack.packb([1, "p", "f", b""]), "Execute has 4 fields, got 3"),
        (ormsgpack.packb([1, "p", 7, b"", b""]), "Execute: expected a string, got a int"),
        (ormsgpack.packb([1, "p", "f", "ctx", b""]), "Execute: expected binary data, got a str"),
        (ormsgpack.packb([2, None]), "Shutdown has 0 fields, got 1"),
        # The tag 1 as a uint8 (cc 01) instead of a fixint: valid msgpack, not canonical.
        (b"\x95\xcc\x01\xa1p\xa1f\xc4\x00\xc4\x00", "non-canonical"),
    ],
)
def test_defective_requests_are_explained(body: bytes, needle: str) -> None:
    with pytest.raises(ExecutorProtocolError, match=needle.replace("(", r"\(")):
        decode_request(body)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (ormsgpack.packb([17, b"", -1]), "expected an unsigned integer, got a int"),
        (ormsgpack.packb([17, b"", True]), "expected an unsigned integer, got a bool"),
        (ormsgpack.packb([17, b"", 1.5]), "expected an unsigned integer, got a float"),
        (ormsgpack.packb([19, "sideways", 1, 2, 3]), "expected 'request' or 'response'"),
        (ormsgpack.packb([18, "k", "m", 3, None, 0]), "expected a string, got a int"),
    ],
)
def test_defective_responses_are_explained(body: bytes, needle: str) -> None:
    with pytest.raises(ExecutorProtocolError, match=needle):
        decode_response(body)


def test_frame_refuses_a_body_over_the_limit() -> None:
    assert frame(b"x" * 1024, 1024) == b"\x00\x00\x04\x00" + b"x" * 1024
    with pytest.raises(FrameTooLargeError) as caught:
        frame(b"x" * 1025, 1024)
    assert (caught.value.size, caught.value.limit) == (1025, 1024)
    assert "1025 bytes exceeds the executor frame limit of 1024 bytes" in str(caught.value)
    assert isinstance(caught.value, ExecutorProtocolError)


def test_too_large_messages_name_the_frame_the_size_and_the_limit() -> None:
    request = TooLarge(FrameKind.REQUEST, 9_000_000, 8_388_608, 0).message
    assert "request frame (task inputs and context) is 9000000 bytes" in request
    assert "frame limit of 8388608 bytes: send smaller inputs" in request
    response = TooLarge(FrameKind.RESPONSE, 100, 50, 0).message
    assert "response frame (task outputs) is 100 bytes" in response
    assert "return smaller outputs" in response


@pytest.mark.parametrize("value", [1023, 2**32, -1])
def test_frame_limits_outside_the_u32_range_are_refused(value: int) -> None:
    with pytest.raises(ValueError, match="between 1024 and 4294967295"):
        validate_max_frame_bytes(value)


@pytest.mark.parametrize(
    ("returncode", "described", "signal_name"),
    [
        (0, "exited with code 0", None),
        (2, "exited with code 2 (invalid configuration)", None),
        (3, "exited with code 3 (protocol error)", None),
        (7, "exited with code 7", None),
        (-6, "killed by SIGABRT", "SIGABRT"),
        (-9, "killed by SIGKILL", "SIGKILL"),
        (-200, "killed by signal 200", "signal 200"),
    ],
)
def test_exit_statuses_read_naturally(
    returncode: int, described: str, signal_name: str | None
) -> None:
    status = ExecutorExitStatus(returncode)
    assert status.describe() == described
    assert status.signal_name == signal_name
