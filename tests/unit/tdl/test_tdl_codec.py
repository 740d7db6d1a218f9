"""The value codec: round trips for every type, Spider's byte layout, and strict rejection."""

from __future__ import annotations

import contextlib
import enum
import math
import struct
import types
from typing import Any, Optional

import attrs
import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core import TaskContext, TaskId, encode_task_outputs
from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.tdl import (
    TdlDeserializationError,
    TdlSerializationError,
    TdlValueError,
    double,
    float32,
    int8,
    int16,
    int32,
    int64,
    job_outputs,
    value_codec,
)


@attrs.frozen
class Complex:
    re: float
    im: float


@attrs.frozen
class Tagged:
    name: str
    values: list[int16]
    extra: bytes | None


@attrs.frozen
class Node:
    label: str
    children: list[Node]


@attrs.frozen
class KeywordOnly:
    first: int
    second: bytes = attrs.field(kw_only=True)


@attrs.frozen
class Positive:
    value: int = attrs.field(validator=attrs.validators.gt(0))


class Colour(enum.IntEnum):
    RED = 1


def _bits(value: float) -> int:
    return int.from_bytes(struct.pack(">d", value), "big")


def _float_of(bits: int) -> float:
    return float(struct.unpack(">d", bits.to_bytes(8, "big"))[0])


# Every 64-bit pattern, so NaN payloads, signed zeros, infinities and subnormals all occur.
any_float64 = st.one_of(st.floats(), st.integers(0, 2**64 - 1).map(_float_of))

LEAVES: dict[Any, st.SearchStrategy[Any]] = {
    int: st.integers(-(2**63), 2**63 - 1),
    int8: st.integers(-(2**7), 2**7 - 1),
    int16: st.integers(-(2**15), 2**15 - 1),
    int32: st.integers(-(2**31), 2**31 - 1),
    int64: st.integers(-(2**63), 2**63 - 1),
    float: any_float64,
    double: any_float64,
    float32: st.floats(width=32),
    bool: st.booleans(),
    bytes: st.binary(max_size=40),
    str: st.text(max_size=20),
}
MAP_KEYS: list[Any] = [int, int8, bytes, str]


def _structs() -> dict[Any, st.SearchStrategy[Any]]:
    complexes = st.builds(Complex, any_float64, any_float64)
    tagged = st.builds(
        Tagged,
        st.text(max_size=10),
        st.lists(LEAVES[int16], max_size=5),
        st.none() | st.binary(max_size=10),
    )
    nodes = st.recursive(
        st.builds(Node, st.text(max_size=5), st.just([])),
        lambda children: st.builds(Node, st.text(max_size=5), st.lists(children, max_size=3)),
        max_leaves=8,
    )
    keyword_only = st.builds(KeywordOnly, LEAVES[int], second=st.binary(max_size=5))
    return {Complex: complexes, Tagged: tagged, Node: nodes, KeywordOnly: keyword_only}


STRUCTS = _structs()

value_annotations: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from([*LEAVES, *STRUCTS]),
    lambda inner: st.one_of(
        inner.map(lambda item: types.GenericAlias(list, (item,))),
        st.tuples(st.sampled_from(MAP_KEYS), inner).map(
            lambda pair: types.GenericAlias(dict, pair)
        ),
        inner.map(lambda item: item | None),
    ),
    max_leaves=5,
)


def values_of(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a generated annotation (written apart from the code under test)."""
    if annotation in LEAVES:
        return LEAVES[annotation]
    if annotation in STRUCTS:
        return STRUCTS[annotation]
    origin = getattr(annotation, "__origin__", None)
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    if origin is list:
        return st.lists(values_of(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(values_of(args[0]), values_of(args[1]), max_size=4)
    # Optional[T]
    (inner,) = [arg for arg in args if arg is not type(None)]
    return st.none() | values_of(inner)


def normalized(value: Any) -> Any:
    """A comparable form in which floats are compared by their bits (NaN == NaN)."""
    if isinstance(value, float):
        return ("float", _bits(value))
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    if attrs.has(type(value)):
        return (
            type(value),
            [normalized(getattr(value, f.name)) for f in attrs.fields(type(value))],
        )
    return value


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_supported_value_round_trips(data: st.DataObject) -> None:
    annotation = data.draw(value_annotations, label="annotation")
    value = data.draw(values_of(annotation), label="value")
    codec = value_codec(annotation)
    payload = codec.encode(value)
    decoded = codec.decode(payload)
    assert normalized(decoded) == normalized(value)
    assert codec.encode(decoded) == payload


@settings(max_examples=300)
@given(any_float64)
def test_float64_is_bit_exact_on_the_wire(value: float) -> None:
    payload = value_codec(float).encode(value)
    # msgpack float64: 0xcb then the IEEE 754 bits, big-endian, as rmp-serde writes an f64.
    assert payload == b"\xcb" + struct.pack(">d", value)
    assert _bits(value_codec(float).decode(payload)) == _bits(value)


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -0.0,
        math.inf,
        -math.inf,
        math.nan,
        _float_of(0x7FF0000000000123),
        5e-324,
        -1.7976931348623157e308,
    ],
)
def test_float64_edge_values_are_preserved(value: float) -> None:
    codec = value_codec(float)
    assert _bits(codec.decode(codec.encode(value))) == _bits(value)


def test_float32_is_carried_as_the_float64_of_the_nearest_float32() -> None:
    codec = value_codec(float32)
    nearest = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert codec.encode(0.1) == b"\xcb" + struct.pack(">d", nearest)
    # A Rust f32 arrives as msgpack float32 (0xca).
    assert codec.decode(b"\xca" + struct.pack(">f", 1.5)) == 1.5
    assert codec.decode(ormsgpack.packb(0.1)) == nearest
    with pytest.raises(
        TdlSerializationError, match=r"expected float32, got float 1e\+39 \(out of range\)"
    ):
        codec.encode(1e39)
    with pytest.raises(TdlDeserializationError, match="expected float32, got float 1e"):
        codec.decode(ormsgpack.packb(1e39))


@pytest.mark.parametrize(
    ("annotation", "low", "high"),
    [
        (int8, -(2**7), 2**7 - 1),
        (int16, -(2**15), 2**15 - 1),
        (int32, -(2**31), 2**31 - 1),
        (int, -(2**63), 2**63 - 1),
    ],
)
@settings(max_examples=50)
@given(offset=st.integers(0, 2**70))
def test_sized_ints_are_range_checked_both_ways(
    annotation: Any, low: int, high: int, offset: int
) -> None:
    codec = value_codec(annotation)
    for inside in (low, high, low + offset % (high - low + 1)):
        assert codec.decode(codec.encode(inside)) == inside
    for outside in (low - 1 - offset, high + 1 + offset):
        with pytest.raises(TdlSerializationError, match=f"outside {low}..{high}"):
            codec.encode(outside)
        if -(2**63) <= outside < 2**64:  # what msgpack can carry at all
            with pytest.raises(TdlDeserializationError, match=f"outside {low}..{high}"):
                codec.decode(ormsgpack.packb(outside))


def test_structs_travel_as_arrays_of_their_fields_in_order() -> None:
    vec = value_codec(list[Complex])
    payload = vec.encode([Complex(1.0, 2.0), Complex(-0.5, 0.0)])
    assert payload == ormsgpack.packb([[1.0, 2.0], [-0.5, 0.0]])
    tagged = value_codec(Tagged)
    assert tagged.encode(Tagged("t", [1, 2], None)) == ormsgpack.packb(["t", [1, 2], None])
    assert value_codec(KeywordOnly).decode(ormsgpack.packb([1, b"x"])) == KeywordOnly(
        1, second=b"x"
    )


def test_a_struct_also_decodes_from_a_map_by_field_name() -> None:
    codec = value_codec(Complex)
    assert codec.decode(ormsgpack.packb({"im": 2.0, "re": 1.0, "ignored": 3})) == Complex(1.0, 2.0)
    with pytest.raises(TdlDeserializationError, match=r"missing field\(s\) im"):
        codec.decode(ormsgpack.packb({"re": 1.0}))


def test_bytes_encode_as_bin_and_decode_from_rust_int_arrays() -> None:
    codec = value_codec(bytes)
    assert codec.encode(b"\x00\xff") == b"\xc4\x02\x00\xff"
    assert codec.encode(bytearray(b"ab")) == codec.encode(memoryview(b"ab")) == b"\xc4\x02ab"
    assert codec.decode(ormsgpack.packb([0, 255, 7])) == b"\x00\xff\x07"
    with pytest.raises(
        TdlDeserializationError,
        match=r"expected bytes, got an array of 1 items \(not an array of 0..255 ints\)",
    ):
        codec.decode(ormsgpack.packb([256]))
    # Rust writes a HashMap<Vec<u8>, _> key as an array too.
    keyed = value_codec(dict[bytes, int])
    assert keyed.decode(bytes.fromhex("81920102") + b"\x05") == {b"\x01\x02": 5}
    assert keyed.encode({b"k": 1}) == b"\x81\xc4\x01k\x01"


def test_ints_are_accepted_where_floats_are_declared() -> None:
    assert value_codec(float).decode(ormsgpack.packb(3)) == 3.0
    assert value_codec(float).encode(3) == ormsgpack.packb(3.0)
    assert value_codec(int).encode(Colour.RED) == ormsgpack.packb(1)


def test_str_is_accepted_from_utf8_bin() -> None:
    codec = value_codec(str)
    assert codec.decode(ormsgpack.packb(b"caf\xc3\xa9")) == "café"
    with pytest.raises(TdlDeserializationError, match="not UTF-8"):
        codec.decode(ormsgpack.packb(b"\xff"))


@pytest.mark.parametrize(
    ("annotation", "wire_value", "message"),
    [
        (int, "3", "expected int64, got str '3'"),
        (int, True, "expected int64, got bool True"),
        (int, 1.0, "expected int64, got float 1.0"),
        (int, None, "expected int64, got nil"),
        (bool, 1, "expected bool, got int 1"),
        (float, "1.0", "expected float64, got str '1.0'"),
        (float, False, "expected float64, got bool False"),
        (bytes, "abc", "expected bytes, got str 'abc'"),
        (str, 5, "expected str, got int 5"),
        (list[int], {1: 2}, "expected a list of int64, got a map of 1 entries"),
        (list[int], [1, "x"], "at [1]: expected int64, got str 'x'"),
        (dict[int, int], [1], "expected a map of int64 to int64, got an array of 1 items"),
        (dict[int, int], {b"k": 1}, "at [key bytes of length 1]: expected int64"),
        (dict[int, bool], {3: 1}, "at [3]: expected bool, got int 1"),
        (
            Complex,
            [1.0],
            "expected struct Complex (2 fields), got an array of 1 items (needs exactly 2 fields)",
        ),
        (Complex, [1.0, 2.0, 3.0], "needs exactly 2 fields"),
        (Complex, 1.0, "expected struct Complex (2 fields), got float 1.0"),
        (list[Complex], [[1.0, 2.0], [1.0, "x"]], "at [1].im: expected float64, got str 'x'"),
        (Node, ["a", [["b", [1]]]], "at .children[0].children[0]: expected struct Node"),
        (Positive, [0], "Positive rejected it: 'value' must be > 0"),
        (Optional[int], "x", "expected int64, got str 'x'"),  # noqa: UP045
    ],
)
def test_mismatched_values_are_rejected_on_decode(
    annotation: Any, wire_value: Any, message: str
) -> None:
    payload = ormsgpack.packb(wire_value, option=ormsgpack.OPT_NON_STR_KEYS)
    with pytest.raises(TdlDeserializationError) as caught:
        value_codec(annotation).decode(payload, "task 't', input 'v' (position 0)")
    assert str(caught.value).startswith("task 't', input 'v' (position 0): ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (int, "3", "expected int64, got str '3'"),
        (int, True, "expected int64, got bool True"),
        (int, 2.0, "expected int64, got float 2.0"),
        (float, None, "expected float64, got nil"),
        (float, 10**400, "out of range"),
        (bool, 0, "expected bool, got int 0"),
        (bytes, "text", "expected bytes, got str 'text'"),
        (str, b"raw", "expected str, got bytes of length 3"),
        (list[int], {1}, "expected a list of int64, got a set"),
        (dict[int, int], {"k": 1}, "at [key str 'k']: expected int64"),
        (dict[int, bool], {1: 2}, "at [1]: expected bool, got int 2"),
        (Complex, (1.0, 2.0), "expected struct Complex (2 fields), got an array of 2 items"),
        (Complex, Tagged("x", [], None), "got a Tagged"),
        (Tagged, Tagged("x", [1, 2**15], None), "at .values[1]: expected int16"),
        (str, "\udc00", "cannot encode as msgpack"),
    ],
)
def test_mismatched_values_are_rejected_on_encode(
    annotation: Any, value: Any, message: str
) -> None:
    with pytest.raises(TdlSerializationError) as caught:
        value_codec(annotation).encode(value, "task 't', output 0")
    assert str(caught.value).startswith("task 't', output 0: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x92\x01", b"\xd4\x01\x01"])
def test_invalid_msgpack_is_a_deserialization_error(payload: bytes) -> None:
    with pytest.raises(TdlDeserializationError, match="not a valid msgpack value"):
        value_codec(list[int]).decode(payload)


@settings(max_examples=200)
@given(
    st.sampled_from([int, float32, bytes, list[Complex], dict[int, str], Node]),
    st.binary(max_size=30),
)
def test_arbitrary_bytes_never_escape_as_another_error(annotation: Any, payload: bytes) -> None:
    with contextlib.suppress(TdlDeserializationError):
        value_codec(annotation).decode(payload)


def test_value_errors_share_one_base() -> None:
    assert issubclass(TdlSerializationError, TdlValueError)
    assert issubclass(TdlDeserializationError, TdlValueError)
    assert issubclass(TdlValueError, ValueError)


def _commit_context(payloads: list[bytes]) -> TaskContext:
    return TaskContext(
        JobId(1),
        TaskId.COMMIT,
        TaskInstanceId(2),
        ResourceGroupId(3),
        encode_task_outputs(payloads),
    )


def test_job_outputs_decodes_every_output_as_one_type() -> None:
    ctx = _commit_context([ormsgpack.packb(value) for value in (3, -1, -2)])
    assert job_outputs(ctx, int) == [3, -1, -2]
    # Over 1024 bytes of payloads, storage compresses the outputs: still transparent.
    big = _commit_context([ormsgpack.packb(b"x" * 2000)])
    assert job_outputs(big, bytes) == [b"x" * 2000]


def test_job_outputs_with_one_type_per_output() -> None:
    ctx = _commit_context([ormsgpack.packb(1), ormsgpack.packb([1.0, 2.0])])
    assert job_outputs(ctx, [int, Complex]) == [1, Complex(1.0, 2.0)]
    with pytest.raises(TdlDeserializationError, match="expected 3 values, the job has 2"):
        job_outputs(ctx, [int, Complex, int])
    with pytest.raises(TdlDeserializationError, match="job output 1: expected int64, got an array"):
        job_outputs(ctx, int)


def test_job_outputs_outside_a_commit_task() -> None:
    ctx = TaskContext(JobId(1), TaskId.index(0), TaskInstanceId(2), ResourceGroupId(3))
    with pytest.raises(TdlDeserializationError, match="not the commit task"):
        job_outputs(ctx, int)


def test_codecs_are_built_once_per_annotation() -> None:
    assert value_codec(list[int]) is value_codec(list[int])
