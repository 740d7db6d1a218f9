"""Type descriptors: the types of task inputs and outputs as a task graph declares them.

They mirror Spider's ``DataTypeDescriptor``: a value type, optionally marked *shared*, built from
primitives (sized ints, floats, booleans), bytes, named structs, lists and maps with int or bytes
keys. Storage compares them for exact equality on every dataflow edge; it never checks them
against the task's code. The JSON form lives in ``spider.core.task_graph``.
"""

from __future__ import annotations

import enum

import attrs


class IntWidth(enum.Enum):
    INT8 = "Int8"
    INT16 = "Int16"
    INT32 = "Int32"
    INT64 = "Int64"


class FloatWidth(enum.Enum):
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"


@attrs.frozen
class IntType:
    width: IntWidth = IntWidth.INT64


@attrs.frozen
class FloatType:
    width: FloatWidth = FloatWidth.FLOAT64


@attrs.frozen
class BoolType:
    pass


@attrs.frozen
class BytesType:
    pass


@attrs.frozen
class StructType:
    """A named record; msgpack-encoded as an array of its fields in order."""

    name: str = attrs.field()

    @name.validator
    def _check_name(self, _attribute: object, value: str) -> None:
        if not value:
            raise ValueError("a struct type needs a non-empty name")


@attrs.frozen
class ListType:
    item: ValueType


MapKeyType = IntType | BytesType


@attrs.frozen
class MapType:
    key: MapKeyType
    value: ValueType


ValueType = IntType | FloatType | BoolType | BytesType | StructType | ListType | MapType


@attrs.frozen
class DataType:
    """The type of one task input or output. ``shared`` is Spider's ``SharedValue`` marker."""

    value: ValueType
    shared: bool = False
