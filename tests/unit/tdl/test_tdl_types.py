"""Type descriptors from annotations: every supported type, and every rejected one."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Optional

import attrs
import pytest

from spider.core import (
    BoolType,
    BytesType,
    DataType,
    FloatType,
    FloatWidth,
    IntType,
    IntWidth,
    ListType,
    MapType,
    StructType,
    ValueType,
)
from spider.tdl import (
    TdlDefinitionError,
    UnsupportedTypeError,
    describe,
    double,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    struct_name,
)


@attrs.frozen
class Complex:
    re: float
    im: float


@struct_name("geometry::Point")
@attrs.frozen
class Point:
    x: int32
    y: int32


class Outer:
    @attrs.frozen
    class Inner:
        value: bytes


@attrs.frozen
class Node:
    """A recursive struct: its descriptor is only its name."""

    label: str
    children: list[Node]


@attrs.frozen
class HasSet:
    tags: set[str]


@attrs.frozen
class Hidden:
    visible: int
    derived: int = attrs.field(init=False, default=0)


@attrs.frozen
class Dangling:
    value: Missing  # type: ignore[name-defined]  # noqa: F821


@attrs.define
class Untyped:
    value = attrs.field()  # type: ignore[var-annotated]


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (int, IntType(IntWidth.INT64)),
        (int8, IntType(IntWidth.INT8)),
        (int16, IntType(IntWidth.INT16)),
        (int32, IntType(IntWidth.INT32)),
        (int64, IntType(IntWidth.INT64)),
        (float, FloatType(FloatWidth.FLOAT64)),
        (float32, FloatType(FloatWidth.FLOAT32)),
        (float64, FloatType(FloatWidth.FLOAT64)),
        (double, FloatType(FloatWidth.FLOAT64)),
        (bool, BoolType()),
        (bytes, BytesType()),
        (str, BytesType()),
        (list[int], ListType(IntType())),
        (list[list[float32]], ListType(ListType(FloatType(FloatWidth.FLOAT32)))),
        (dict[int8, bytes], MapType(IntType(IntWidth.INT8), BytesType())),
        (dict[bytes, list[bool]], MapType(BytesType(), ListType(BoolType()))),
        (dict[str, int], MapType(BytesType(), IntType())),
        (Complex, StructType("Complex")),
        (Point, StructType("geometry::Point")),
        (Outer.Inner, StructType("Outer.Inner")),
        (Node, StructType("Node")),
        (list[Complex], ListType(StructType("Complex"))),
        (int | None, IntType()),
        (Optional[bytes], BytesType()),  # noqa: UP045 (the old spelling must work too)
        (Annotated[int, "documentation"], IntType()),
        (Annotated[int16, "documentation"], IntType(IntWidth.INT16)),
    ],
)
def test_descriptor_of_each_supported_type(annotation: Any, expected: ValueType) -> None:
    assert describe(annotation) == DataType(expected)


@pytest.mark.parametrize(
    ("annotation", "fragment"),
    [
        (set[int], "set[int] is not a supported value type"),
        (object, "object is not a supported value type"),
        (Any, "Any is not a supported value type"),
        (complex, "complex is not a supported value type"),
        (None, "None is only allowed as `T | None`"),
        (list, "a bare list needs its item types"),
        (typing.List, "a list needs its item type"),  # noqa: UP006 (the old spelling, unparametrized)
        (typing.Dict, "a dict needs its key and value types"),  # noqa: UP006
        (Dangling, "cannot resolve the field types of Dangling: name 'Missing' is not defined"),
        (dict, "a bare dict needs its item types"),
        (dict[bool, int], "map keys must be int or bytes"),
        (dict[float, int], "map keys must be int or bytes"),
        (dict[int | None, int], "map keys must be int or bytes"),
        (int | str, "only `T | None` unions are supported"),
        (int | str | None, "only `T | None` unions are supported"),
        (tuple[int, int], "tuples are only allowed as a return annotation"),
        (Annotated[float, IntWidth.INT8], "Int8 applies to int, not float"),
        (Annotated[int, FloatWidth.FLOAT32], "Float32 applies to float, not int"),
        (Annotated[int, IntWidth.INT8, IntWidth.INT16], "more than one width"),
        (HasSet, "HasSet.tags: set[str] is not a supported value type"),
        (list[HasSet], "HasSet.tags"),
        (Hidden, "Hidden.derived has init=False"),
        (Untyped, "Untyped.value has no type annotation"),
    ],
)
def test_unsupported_types_are_rejected_with_the_reason(annotation: Any, fragment: str) -> None:
    with pytest.raises(UnsupportedTypeError) as caught:
        describe(annotation)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, TdlDefinitionError)


def test_struct_name_must_not_be_empty() -> None:
    with pytest.raises(TdlDefinitionError, match="non-empty string"):
        struct_name("")
