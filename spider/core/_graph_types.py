"""Type descriptors in a task graph: validation, readable names, and Spider's JSON form.

The JSON form is serde's externally tagged enums: ``{"Value": V}`` or ``{"SharedValue": V}``,
where V is ``{"Primitive": {"Int": "Int64"}}``, ``{"Primitive": {"Float": "Float64"}}``,
``{"Primitive": "Boolean"}``, ``{"Bytes": {}}``, ``{"Struct": "name"}``, ``{"List": V}`` or
``{"Map": {"key": {"Int": ...} | {"Bytes": {}}, "value": V}}``.

Nesting is bounded: Spider parses the graph with serde_json, which refuses documents nested more
than 128 levels deep, so a descriptor may nest at most ``MAX_TYPE_DEPTH`` JSON objects. That
keeps every graph we accept or write parseable by Spider, and keeps equality, hashing and the
codec far from Python's recursion limit.
"""

from __future__ import annotations

import json
from typing import Any

from spider.core.bounds import MAX_NAME_CHARS, check_length, quoted
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

MAX_TYPE_DEPTH = 100

_INT_WIDTHS = {width.value: width for width in IntWidth}
_FLOAT_WIDTHS = {width.value: width for width in FloatWidth}
_EXAMPLE = '{"Value": {"Primitive": {"Int": "Int64"}}}'


def is_utf8_encodable(text: str) -> bool:
    """False for strings holding lone surrogates, which neither JSON nor UTF-8 can carry."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_data_type(data_type: object) -> DataType:
    """Return ``data_type`` if it is a well-formed descriptor, else raise ``TaskGraphError``.

    Iterative on purpose: a hand-built descriptor may be nested deeper than Python's recursion
    limit, and this check is what keeps such a descriptor out of a graph.
    """
    if not isinstance(data_type, DataType):
        raise TaskGraphError(f"expected a DataType, got {type(data_type).__name__}")
    if not isinstance(data_type.shared, bool):
        raise TaskGraphError(f"DataType.shared must be a bool, got {_show(data_type.shared)}")
    # Each entry is a value type and the JSON nesting level of its own object.
    pending: list[tuple[object, int]] = [(data_type.value, 2)]
    while pending:
        node, level = pending.pop()
        deepest = level
        if isinstance(node, IntType | FloatType):
            _check_width(node)
            deepest = level + 1
        elif isinstance(node, BytesType):
            deepest = level + 1
        elif isinstance(node, StructType):
            if not isinstance(node.name, str) or not node.name:
                raise TaskGraphError(
                    f"invalid struct type name {_show(node.name)}: it must be a non-empty string"
                )
            too_long = check_length(node.name, MAX_NAME_CHARS, "a struct type name")
            if too_long is not None:
                raise TaskGraphError(f"invalid struct type name: {too_long}")
            if not is_utf8_encodable(node.name):
                raise TaskGraphError(
                    f"invalid struct type name {quoted(node.name)}: it must be encodable as UTF-8"
                )
        elif isinstance(node, ListType):
            pending.append((node.item, level + 1))
        elif isinstance(node, MapType):
            if isinstance(node.key, IntType):
                _check_width(node.key)
                deepest = level + 2
            elif isinstance(node.key, BytesType):
                deepest = level + 3
            else:
                raise TaskGraphError(
                    f"invalid map key type {type(node.key).__name__}: "
                    "a map key must be an IntType or BytesType"
                )
            pending.append((node.value, level + 2))
        elif not isinstance(node, BoolType):
            raise TaskGraphError(f"invalid value type {type(node).__name__} in a DataType")
        if deepest > MAX_TYPE_DEPTH:
            raise TaskGraphError(_too_deep_message())
    return data_type


def _check_width(node: IntType | FloatType) -> None:
    expected = IntWidth if isinstance(node, IntType) else FloatWidth
    if not isinstance(node.width, expected):
        raise TaskGraphError(
            f"invalid {type(node).__name__} width {node.width!r}: expected an {expected.__name__}"
        )


def _shorten(where: str) -> str:
    # The path of a too-deep descriptor repeats ".List" a hundred times; keep both ends.
    return where if len(where) <= 100 else f"{where[:50]}...{where[-40:]}"


def _too_deep_message() -> str:
    return (
        f"type descriptor nests more than {MAX_TYPE_DEPTH} JSON objects deep; Spider's JSON "
        "parser stops at 128 levels, so flatten the type"
    )


def describe_data_type(data_type: DataType) -> str:
    """A short readable name such as ``Value(List<Float64>)``, for error messages.

    Only for descriptors that passed ``check_data_type`` (their depth is bounded).
    """
    wrapper = "SharedValue" if data_type.shared else "Value"
    return f"{wrapper}({_describe_value(data_type.value)})"


def _describe_value(value: ValueType) -> str:
    if isinstance(value, IntType):
        return value.width.value
    if isinstance(value, FloatType):
        return value.width.value
    if isinstance(value, BoolType):
        return "Boolean"
    if isinstance(value, BytesType):
        return "Bytes"
    if isinstance(value, StructType):
        return f"Struct({value.name})"
    if isinstance(value, ListType):
        return f"List<{_describe_value(value.item)}>"
    key = value.key.width.value if isinstance(value.key, IntType) else "Bytes"
    return f"Map<{key}, {_describe_value(value.value)}>"


def data_type_json(data_type: DataType) -> str:
    """Spider's compact JSON text of a validated descriptor."""
    wrapper = '{"SharedValue":' if data_type.shared else '{"Value":'
    return wrapper + _value_json(data_type.value) + "}"


def _value_json(value: ValueType) -> str:
    if isinstance(value, IntType):
        return '{"Primitive":{"Int":"' + value.width.value + '"}}'
    if isinstance(value, FloatType):
        return '{"Primitive":{"Float":"' + value.width.value + '"}}'
    if isinstance(value, BoolType):
        return '{"Primitive":"Boolean"}'
    if isinstance(value, BytesType):
        return '{"Bytes":{}}'
    if isinstance(value, StructType):
        return '{"Struct":' + json.dumps(value.name, ensure_ascii=False) + "}"
    if isinstance(value, ListType):
        return '{"List":' + _value_json(value.item) + "}"
    if isinstance(value.key, IntType):
        key = '{"Int":"' + value.key.width.value + '"}'
    else:
        key = '{"Bytes":{}}'
    return '{"Map":{"key":' + key + ',"value":' + _value_json(value.value) + "}}"


def parse_data_type(raw: Any, where: str) -> DataType:
    """Build a descriptor from parsed JSON; ``where`` names the spot for error messages."""
    tag, inner = _variant(raw, where, ("Value", "SharedValue"))
    return DataType(_parse_value(inner, f"{where}.{tag}", 2), shared=tag == "SharedValue")


def _parse_value(raw: Any, where: str, level: int) -> ValueType:
    if level > MAX_TYPE_DEPTH:
        raise TaskGraphError(f"{_shorten(where)}: {_too_deep_message()}")
    tag, inner = _variant(raw, where, ("Primitive", "Bytes", "Struct", "List", "Map"))
    where = f"{where}.{tag}"
    if tag == "Primitive":
        if inner == "Boolean":
            return BoolType()
        kind, width = _variant(inner, where, ("Int", "Float"), unit="Boolean")
        return _parse_number(kind, width, f"{where}.{kind}", level + 1)
    if tag == "Bytes":
        _check_bytes(inner, where, level + 1)
        return BytesType()
    if tag == "Struct":
        if not isinstance(inner, str) or not inner:
            raise TaskGraphError(
                f"{_shorten(where)}: a struct type is named by a non-empty string, got {json_kind(inner)}"
            )
        _check_text(inner, where)
        return StructType(inner)
    if tag == "List":
        return ListType(_parse_value(inner, where, level + 1))
    if not isinstance(inner, dict):
        raise TaskGraphError(
            f'{_shorten(where)}: expected {{"key": K, "value": V}}, got {json_kind(inner)}'
        )
    for field in ("key", "value"):
        if field not in inner:
            raise TaskGraphError(f"{_shorten(where)}: missing field `{field}`")
    key_where = f"{where}.key"
    key_kind, key_inner = _variant(inner["key"], key_where, ("Int", "Bytes"))
    key: IntType | BytesType
    if key_kind == "Int":
        key = IntType(_int_width(key_inner, f"{key_where}.Int"))
        if level + 2 > MAX_TYPE_DEPTH:
            raise TaskGraphError(f"{_shorten(key_where)}: {_too_deep_message()}")
    else:
        _check_bytes(key_inner, f"{key_where}.Bytes", level + 3)
        key = BytesType()
    return MapType(key, _parse_value(inner["value"], f"{where}.value", level + 2))


def _parse_number(kind: str, raw: Any, where: str, level: int) -> IntType | FloatType:
    if level > MAX_TYPE_DEPTH:
        raise TaskGraphError(f"{_shorten(where)}: {_too_deep_message()}")
    if kind == "Int":
        return IntType(_int_width(raw, where))
    if isinstance(raw, str) and raw in _FLOAT_WIDTHS:
        return FloatType(_FLOAT_WIDTHS[raw])
    raise TaskGraphError(f'{_shorten(where)}: expected "Float32" or "Float64", got {_show(raw)}')


def _int_width(raw: Any, where: str) -> IntWidth:
    if isinstance(raw, str) and raw in _INT_WIDTHS:
        return _INT_WIDTHS[raw]
    raise TaskGraphError(
        f'{_shorten(where)}: expected "Int8", "Int16", "Int32" or "Int64", got {_show(raw)}'
    )


def _check_bytes(raw: Any, where: str, level: int) -> None:
    # Spider's bytes descriptor is an empty struct: `{}` (unknown fields are ignored, as serde does).
    if not isinstance(raw, dict):
        raise TaskGraphError(
            f'{_shorten(where)}: expected {{}} (as in {{"Bytes": {{}}}}), got {json_kind(raw)}'
        )
    if level > MAX_TYPE_DEPTH:
        raise TaskGraphError(f"{_shorten(where)}: {_too_deep_message()}")


def _variant(
    raw: Any, where: str, tags: tuple[str, ...], *, unit: str | None = None
) -> tuple[str, Any]:
    """Unpack an externally tagged enum value ``{"Tag": inner}``."""
    if isinstance(raw, dict) and len(raw) == 1:
        ((tag, inner),) = raw.items()
        if tag in tags:
            return tag, inner
        choices = ", ".join(f'"{name}"' for name in tags)
        raise TaskGraphError(
            f"{_shorten(where)}: unknown variant {_show(tag)}, expected one of {choices}"
        )
    shapes = " or ".join(f'{{"{name}": ...}}' for name in tags)
    if unit is not None:
        shapes += f' or "{unit}"'
    hint = f" (for example {_EXAMPLE})" if tags[0] == "Value" else ""
    raise TaskGraphError(f"{_shorten(where)}: expected {shapes}{hint}, got {_show_shape(raw)}")


def _check_text(text: str, where: str) -> None:
    if not is_utf8_encodable(text):
        raise TaskGraphError(
            f"{_shorten(where)}: the string {quoted(text)} holds a lone UTF-16 surrogate"
        )


def json_kind(value: Any) -> str:
    """The JSON type of a parsed value, with an article, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value!r}" if len(repr(value)) <= 40 else "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"an array of {len(value)} elements"
    return f"an object with {len(value)} keys"


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) <= 40:
        return json.dumps(value, ensure_ascii=False)
    return json_kind(value)


def _show_shape(value: Any) -> str:
    if isinstance(value, dict) and 1 < len(value) <= 5:
        keys = ", ".join(_show(key) for key in value)
        return f"an object with keys {keys} (a variant has exactly one key)"
    return _show(value)
