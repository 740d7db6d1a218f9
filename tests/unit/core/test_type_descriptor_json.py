"""Type descriptors in Spider's JSON: serde's externally tagged enums, exact shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from spider.core.data_types import (
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
from spider.core.errors import TaskGraphError
from spider.core.task_graph import MAX_TYPE_DEPTH, data_type_from_json, data_type_to_json

from .core_strategies import data_types


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        (DataType(IntType(IntWidth.INT8)), {"Value": {"Primitive": {"Int": "Int8"}}}),
        (DataType(IntType()), {"Value": {"Primitive": {"Int": "Int64"}}}),
        (DataType(FloatType(FloatWidth.FLOAT32)), {"Value": {"Primitive": {"Float": "Float32"}}}),
        (DataType(FloatType()), {"Value": {"Primitive": {"Float": "Float64"}}}),
        (DataType(BoolType()), {"Value": {"Primitive": "Boolean"}}),
        (DataType(BytesType()), {"Value": {"Bytes": {}}}),
        (DataType(StructType("Result")), {"Value": {"Struct": "Result"}}),
        (
            DataType(ListType(IntType(IntWidth.INT32))),
            {"Value": {"List": {"Primitive": {"Int": "Int32"}}}},
        ),
        (
            DataType(MapType(IntType(IntWidth.INT32), FloatType())),
            {
                "Value": {
                    "Map": {"key": {"Int": "Int32"}, "value": {"Primitive": {"Float": "Float64"}}}
                }
            },
        ),
        (
            DataType(MapType(BytesType(), ListType(BytesType())), shared=True),
            {"SharedValue": {"Map": {"key": {"Bytes": {}}, "value": {"List": {"Bytes": {}}}}}},
        ),
    ],
)
def test_each_shape_is_written_as_spider_writes_it(data_type: DataType, expected: Any) -> None:
    text = data_type_to_json(data_type)
    assert json.loads(text) == expected
    # Compact, with keys in serde's order.
    assert text == json.dumps(expected, separators=(",", ":"))
    assert data_type_from_json(text) == data_type


def test_shared_value_is_a_distinct_type() -> None:
    shared = data_type_from_json('{"SharedValue": {"Bytes": {}}}')
    assert shared == DataType(BytesType(), shared=True)
    assert shared != DataType(BytesType())


def test_unicode_struct_names_are_written_as_utf8() -> None:
    text = data_type_to_json(DataType(StructType("Résumé")))
    assert text == '{"Value":{"Struct":"Résumé"}}'


@given(data_types)
def test_round_trip(data_type: DataType) -> None:
    assert data_type_from_json(data_type_to_json(data_type)) == data_type
    assert data_type_from_json(data_type_to_json(data_type).encode()) == data_type


def test_unknown_fields_in_the_bytes_struct_are_ignored() -> None:
    assert data_type_from_json('{"Value": {"Bytes": {"future": 1}}}') == DataType(BytesType())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Value": {"Primitive": {"Int": "Int128"}}}', r'"Int8", "Int16", "Int32" or "Int64"'),
        ('{"Value": {"Primitive": {"Float": "Float16"}}}', r'"Float32" or "Float64"'),
        ('{"Value": {"Primitive": "Bool"}}', r'expected \{"Int": ...\} or \{"Float": ...\}'),
        ('{"Value": {"Primitive": {"Char": "A"}}}', 'unknown variant "Char"'),
        ('{"Value": {"Struct": ""}}', "non-empty string"),
        ('{"Value": {"Struct": 7}}', "non-empty string"),
        ('{"Value": {"Bytes": null}}', r"expected \{\}"),
        ('{"Value": {"Bytes": []}}', r"expected \{\}"),
        ('{"Value": {"Tuple": []}}', 'unknown variant "Tuple"'),
        ('{"Value": {"List": {}}}', r'expected \{"Primitive": ...\}'),
        ('{"Value": {"Map": {"key": {"Int": "Int8"}}}}', "missing field `value`"),
        ('{"Value": {"Map": {"value": {"Bytes": {}}}}}', "missing field `key`"),
        ('{"Value": {"Map": {"key": {"Struct": "K"}, "value": {"Bytes": {}}}}}', "unknown variant"),
        ('{"Value": {"Map": [1, 2]}}', r'expected \{"key": K, "value": V\}'),
        ('{"Value": {"Bytes": {}}, "SharedValue": {"Bytes": {}}}', "exactly one key"),
        ('{"Shared": {"Bytes": {}}}', 'unknown variant "Shared"'),
        ('"Value"', r'expected \{"Value": ...\} or \{"SharedValue": ...\}'),
        ("[]", "got an array"),
        ('{"Value": {"Struct": "\\ud800"}}', "lone UTF-16 surrogate"),
        ('{"Value": {"Bytes": {}}', "invalid type descriptor JSON"),
        ("NaN", "invalid type descriptor JSON"),
    ],
)
def test_malformed_descriptors_are_rejected_with_the_place(text: str, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        data_type_from_json(text)


def test_the_error_names_the_path_to_the_defect() -> None:
    text = '{"Value": {"Map": {"key": {"Int": "Int8"}, "value": {"List": {"Struct": ""}}}}}'
    with pytest.raises(TaskGraphError, match=r"type descriptor\.Value\.Map\.value\.List\.Struct"):
        data_type_from_json(text)


def nested_lists(depth: int, leaf: ValueType) -> ValueType:
    value = leaf
    for _ in range(depth):
        value = ListType(value)
    return value


def test_the_deepest_allowed_descriptor_round_trips() -> None:
    # JSON objects: DataType (1) + lists (n) + {"Primitive": "Boolean"} (1).
    deepest = DataType(nested_lists(MAX_TYPE_DEPTH - 2, BoolType()))
    assert data_type_from_json(data_type_to_json(deepest)) == deepest
    # An int leaf costs one more object: {"Primitive": {"Int": ...}}.
    deepest_int = DataType(nested_lists(MAX_TYPE_DEPTH - 3, IntType()))
    assert data_type_from_json(data_type_to_json(deepest_int)) == deepest_int


@pytest.mark.parametrize("leaf", [BoolType(), IntType(), BytesType(), StructType("S")])
def test_one_level_deeper_is_rejected_both_ways(leaf: ValueType) -> None:
    allowed = DataType(nested_lists(0, leaf))
    depth = json.dumps(json.loads(data_type_to_json(allowed))).count("{")
    too_deep = DataType(nested_lists(MAX_TYPE_DEPTH - depth + 1, leaf))
    with pytest.raises(TaskGraphError, match=f"more than {MAX_TYPE_DEPTH}"):
        data_type_to_json(too_deep)
    text = '{"Value":' + '{"List":' * (MAX_TYPE_DEPTH - depth + 1)
    text += data_type_to_json(allowed)[len('{"Value":') : -1] + "}" * (MAX_TYPE_DEPTH - depth + 2)
    with pytest.raises(TaskGraphError, match=f"more than {MAX_TYPE_DEPTH}"):
        data_type_from_json(text)


def test_deep_maps_are_bounded_too() -> None:
    value: ValueType = BoolType()
    for _ in range(MAX_TYPE_DEPTH):
        value = MapType(BytesType(), value)
    with pytest.raises(TaskGraphError, match="nests more than"):
        data_type_to_json(DataType(value))


def test_absurd_nesting_is_a_codec_error_not_a_recursion_error() -> None:
    deep = DataType(nested_lists(50_000, BoolType()))
    with pytest.raises(TaskGraphError, match="nests more than"):
        data_type_to_json(deep)
    with pytest.raises(TaskGraphError):
        data_type_from_json('{"Value":' + '{"List":' * 50_000 + "{}" + "}" * 50_001)


@pytest.mark.parametrize(
    "bad",
    [
        DataType(IntType("Int64")),  # type: ignore[arg-type]
        DataType(FloatType(IntWidth.INT8)),  # type: ignore[arg-type]
        DataType(MapType(FloatType(), BoolType())),  # type: ignore[arg-type]
        DataType(ListType("Int64")),  # type: ignore[arg-type]
        DataType(BoolType(), shared=1),  # type: ignore[arg-type]
        DataType(StructType("\udc80")),
        BytesType(),
    ],
)
def test_hand_built_nonsense_is_rejected(bad: object) -> None:
    with pytest.raises(TaskGraphError):
        data_type_to_json(bad)  # type: ignore[arg-type]


def test_deep_maps_in_json_are_bounded_at_the_key() -> None:
    # Each map costs two objects; at 50 maps the innermost key {"Int": ...} sits at depth 102.
    text = '{"Value":' + '{"Map":{"key":{"Int":"Int8"},"value":' * 50 + '{"Primitive":"Boolean"}'
    text += "}}" * 50 + "}"
    with pytest.raises(TaskGraphError, match=r"\.key: type descriptor nests more than 100"):
        data_type_from_json(text)
    allowed = '{"Value":' + '{"Map":{"key":{"Int":"Int8"},"value":' * 49 + '{"Primitive":"Boolean"}'
    allowed += "}}" * 49 + "}"
    assert data_type_to_json(data_type_from_json(allowed)) == allowed.replace(" ", "")
