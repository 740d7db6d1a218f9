"""Jobs described as JSON (Spider's task-graph JSON plus job inputs), and outputs shown as JSON.

A JSON description carries no Python types, so values are encoded from the graph's own type
descriptors: JSON numbers, booleans, arrays and objects map onto msgpack as the table in
docs/cli.md says. Struct values are written field by field as JSON arrays, unchecked: Spider's
descriptors name a struct but do not describe its fields.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any, Final

import ormsgpack

from spider.client._job import JobDescription
from spider.client.errors import JobDefinitionError, OutputDecodeError
from spider.core.data_types import (
    BoolType,
    BytesType,
    DataType,
    FloatType,
    IntType,
    IntWidth,
    ListType,
    MapType,
    StructType,
    ValueType,
)
from spider.core.errors import TaskGraphError
from spider.core.task_graph import task_graph_from_json

_MSGPACK_OPTIONS: Final = ormsgpack.OPT_NON_STR_KEYS
_INT_BITS: Final = {IntWidth.INT8: 8, IntWidth.INT16: 16, IntWidth.INT32: 32, IntWidth.INT64: 64}
BASE64_KEY: Final = "base64"
"""Bytes that are not UTF-8 text are written as ``{"base64": "..."}``, both ways."""


def job_from_json(document: Any) -> JobDescription:
    """A job from ``{"graph": <Spider task-graph JSON>, "inputs": [<value per graph input>]}``."""
    if not isinstance(document, Mapping) or "graph" not in document:
        raise JobDefinitionError(
            'a JSON job description is an object {"graph": {...}, "inputs": [...]}; '
            "graph is Spider's task-graph JSON (docs/task-graph.md)"
        )
    unknown = set(document) - {"graph", "inputs"}
    if unknown:
        raise JobDefinitionError(
            f"unknown key(s) {sorted(unknown)} in the job description; expected graph, inputs"
        )
    try:
        graph = task_graph_from_json(json.dumps(document["graph"]))
        graph.check_submittable()
    except TaskGraphError as exc:
        raise JobDefinitionError(str(exc)) from None
    inputs = document.get("inputs", [])
    types = graph.graph_input_types()
    if not isinstance(inputs, list) or len(inputs) != len(types):
        given = len(inputs) if isinstance(inputs, list) else type(inputs).__name__
        raise JobDefinitionError(
            f"the graph takes {len(types)} job input(s), in graph-input order (input tasks by "
            f"index, then their inputs by position); the description gives {given}"
        )
    payloads = tuple(
        encode_json_value(value, data_type, f"inputs[{position}]")
        for position, (value, data_type) in enumerate(zip(inputs, types, strict=True))
    )
    labels = tuple(
        f"{graph.task(source.task_idx).tdl_context.task_func}[{source.task_idx}].{source.position}"
        for source in graph.graph_outputs()
    )
    return JobDescription(graph, payloads, None, labels)


def encode_json_value(value: Any, data_type: DataType, where: str) -> bytes:
    """The msgpack payload of a JSON ``value`` of type ``data_type``."""
    data = _convert(value, data_type.value, where)
    return ormsgpack.packb(data, option=_MSGPACK_OPTIONS)


def _convert(value: Any, value_type: ValueType, where: str) -> Any:
    match value_type:
        case IntType(width=width):
            bits = _INT_BITS[width]
            if not isinstance(value, int) or isinstance(value, bool):
                raise _mismatch(where, f"an integer ({width.value})", value)
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise JobDefinitionError(f"{where}: {value} does not fit in {width.value}")
            return value
        case FloatType():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _mismatch(where, "a number", value)
            return float(value)
        case BoolType():
            if not isinstance(value, bool):
                raise _mismatch(where, "true or false", value)
            return value
        case BytesType():
            return _bytes(value, where)
        case StructType():
            if not isinstance(value, list | dict):
                raise _mismatch(where, f"struct {value_type.name} as an array of fields", value)
            return value
        case ListType(item=item):
            if not isinstance(value, list):
                raise _mismatch(where, "an array", value)
            return [_convert(entry, item, f"{where}[{i}]") for i, entry in enumerate(value)]
        case MapType(key=key, value=item):
            if not isinstance(value, dict):
                raise _mismatch(where, "an object", value)
            return {
                _map_key(name, key, where): _convert(entry, item, f"{where}[{name!r}]")
                for name, entry in value.items()
            }
    raise JobDefinitionError(f"{where}: unsupported type {value_type!r}")  # pragma: no cover


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {BASE64_KEY}:
        try:
            return base64.b64decode(value[BASE64_KEY], validate=True)
        except (ValueError, TypeError) as exc:
            raise JobDefinitionError(f"{where}: invalid base64: {exc}") from None
    raise _mismatch(where, 'a string or {"base64": "..."}', value)


def _map_key(name: str, key: IntType | BytesType, where: str) -> int | bytes:
    if isinstance(key, BytesType):
        return name.encode()
    try:
        number = int(name)
    except ValueError:
        raise JobDefinitionError(
            f"{where}: map key {name!r} is not an integer ({key.width.value})"
        ) from None
    return int(_convert(number, key, f"{where} key {name!r}"))


def _mismatch(where: str, expected: str, value: Any) -> JobDefinitionError:
    shown = json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return JobDefinitionError(f"{where}: expected {expected}, got {shown}")


def payload_to_json(payload: bytes) -> Any:
    """A msgpack payload of unknown type as a JSON-ready value (bytes as text or base64)."""
    try:
        data = ormsgpack.unpackb(payload, option=_MSGPACK_OPTIONS)
    except (ormsgpack.MsgpackDecodeError, TypeError) as exc:
        raise OutputDecodeError(f"an output is not valid msgpack: {exc}") from exc
    return json_ready(data)


def json_ready(value: Any) -> Any:
    """``value`` with bytes, map keys and non-finite floats made representable in JSON."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {BASE64_KEY: base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity; "nan", "inf", "-inf"
    if isinstance(value, list | tuple):
        return [json_ready(entry) for entry in value]
    if isinstance(value, dict):
        return {_key_text(key): json_ready(entry) for key, entry in value.items()}
    return value


def _key_text(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode(errors="backslashreplace")
    return str(key)
