"""The one cattrs converter between Python values and msgpack-ready data, strict both ways.

*Structuring* turns what ``ormsgpack.unpackb`` produced into the declared Python type;
*unstructuring* turns a task's Python value into what ``ormsgpack.packb`` writes the way Spider
(rmp-serde) does: attrs classes become arrays of their fields in order. Both directions validate
against the declared type and raise ``ValueMismatchError`` (with the path inside the value) instead of
coercing: a ``"3"`` never becomes ``3``.

Hooks are built once per annotation by cattrs's factory dispatch and cached, so a task's codecs
cost one dictionary lookup at registration and nothing per call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

import cattrs

from spider.core.data_types import FloatWidth
from spider.tdl._types import (
    BoolShape,
    BytesShape,
    FloatShape,
    IntShape,
    ListShape,
    MapShape,
    OptionalShape,
    Shape,
    StrShape,
    StructShape,
    classify,
)

StructureHook = Callable[[Any, Any], Any]
UnstructureHook = Callable[[Any], Any]

_F32: Final = struct.Struct("<f")
_MAX_SHOWN_CHARS: Final = 40


class ValueMismatchError(Exception):
    """Internal: a value that does not fit its declared type; callers say which task and input."""

    def __init__(self, expected: str, value: Any, reason: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.reason = reason
        self.path: list[str] = []

    def at(self, segment: str) -> ValueMismatchError:
        """Prepend where inside the enclosing value this mismatch happened."""
        self.path.insert(0, segment)
        return self

    def describe(self) -> str:
        """``at [2].re: expected float64, got str 'x'``."""
        where = f"at {''.join(self.path)}: " if self.path else ""
        detail = f" ({self.reason})" if self.reason else ""
        return f"{where}expected {self.expected}, got {show(self.value)}{detail}"


def show(value: Any) -> str:
    """A short description of a value for error messages (never its whole content)."""
    if value is None:
        return "nil"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN_CHARS else value[:_MAX_SHOWN_CHARS] + "..."
        return f"str {shown!r}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"bytes of length {len(value)}"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return f"a map of {len(value)} entries"
    return f"a {type(value).__qualname__}"


# --- structuring: unpacked msgpack -> declared Python type -----------------------------------


def _structure_int(shape: IntShape) -> StructureHook:
    low, high, label = shape.low, shape.high, shape.label

    def structure(value: Any, _: Any) -> int:
        if type(value) is int:
            if low <= value <= high:
                return value
            raise ValueMismatchError(label, value, f"outside {low}..{high}")
        raise ValueMismatchError(label, value)

    return structure


def _structure_float(shape: FloatShape) -> StructureHook:
    label = shape.label
    narrow = shape.width is FloatWidth.FLOAT32

    def structure(value: Any, _: Any) -> float:
        # serde's float visitors accept integers too; so do we.
        if type(value) is float or type(value) is int:
            return _to_float(value, label, narrow=narrow)
        raise ValueMismatchError(label, value)

    return structure


def _structure_bool(_shape: BoolShape) -> StructureHook:
    def structure(value: Any, _: Any) -> bool:
        if value is True or value is False:
            return value
        raise ValueMismatchError("bool", value)

    return structure


def _structure_bytes(_shape: BytesShape) -> StructureHook:
    def structure(value: Any, _: Any) -> bytes:
        if type(value) is bytes:
            return value
        # rmp-serde writes Vec<u8> as an array of small ints (and map keys arrive as tuples).
        if type(value) is list or type(value) is tuple:
            try:
                return bytes(value)
            except (TypeError, ValueError):
                raise ValueMismatchError("bytes", value, "not an array of 0..255 ints") from None
        raise ValueMismatchError("bytes", value)

    return structure


def _structure_str(_shape: StrShape) -> StructureHook:
    def structure(value: Any, _: Any) -> str:
        if type(value) is str:
            return value
        # str is described as Bytes, so a bytes producer may feed a str input: accept UTF-8.
        if type(value) is bytes:
            try:
                return value.decode()
            except UnicodeDecodeError as exc:
                raise ValueMismatchError("str", value, f"not UTF-8: {exc.reason}") from None
        raise ValueMismatchError("str", value)

    return structure


def _structure_list(shape: ListShape) -> StructureHook:
    item = shape.item
    structure_item = converter.get_structure_hook(item)

    def structure(value: Any, _: Any) -> list[Any]:
        if type(value) is not list:
            raise ValueMismatchError(f"a list of {_label(item)}", value)
        result = []
        for index, element in enumerate(value):
            try:
                result.append(structure_item(element, item))
            except ValueMismatchError as exc:
                raise exc.at(f"[{index}]") from None
        return result

    return structure


def _structure_map(shape: MapShape) -> StructureHook:
    key_type, value_type = shape.key, shape.value
    structure_key = converter.get_structure_hook(key_type)
    structure_value = converter.get_structure_hook(value_type)

    def structure(value: Any, _: Any) -> dict[Any, Any]:
        if type(value) is not dict:
            raise ValueMismatchError(f"a map of {_label(key_type)} to {_label(value_type)}", value)
        result = {}
        for raw_key, raw_value in value.items():
            try:
                key = structure_key(raw_key, key_type)
            except ValueMismatchError as exc:
                raise exc.at(f"[key {show(raw_key)}]") from None
            try:
                result[key] = structure_value(raw_value, value_type)
            except ValueMismatchError as exc:
                raise exc.at(f"[{key!r}]") from None
        return result

    return structure


def _structure_struct(shape: StructShape) -> StructureHook:
    cls, label = shape.cls, shape.label
    fields = shape.fields
    names = [field.name for field in fields]
    by_keyword = any(field.kw_only for field in fields)
    # Resolved on first use: a struct may contain itself (list[Node] inside Node).
    hooks: list[StructureHook] = []

    def structure(value: Any, _: Any) -> Any:
        if type(value) is list:
            if len(value) != len(fields):
                raise ValueMismatchError(label, value, f"needs exactly {len(fields)} fields")
            raw_fields = value
        elif type(value) is dict:
            # rmp-serde also accepts a struct as a map by field name (extra keys ignored).
            missing = [name for name in names if name not in value]
            if missing:
                raise ValueMismatchError(label, value, f"missing field(s) {', '.join(missing)}")
            raw_fields = [value[name] for name in names]
        else:
            raise ValueMismatchError(label, value)
        if not hooks:
            hooks.extend(converter.get_structure_hook(field.annotation) for field in fields)
        values = []
        for field, hook, raw in zip(fields, hooks, raw_fields, strict=True):
            try:
                values.append(hook(raw, field.annotation))
            except ValueMismatchError as exc:
                raise exc.at(f".{field.name}") from None
        try:
            if by_keyword:
                return cls(**{field.alias: v for field, v in zip(fields, values, strict=True)})
            return cls(*values)
        except (TypeError, ValueError) as exc:
            # The class's own validators refused the fields.
            raise ValueMismatchError(
                label, value, f"{cls.__qualname__} rejected it: {exc}"
            ) from None

    return structure


def _structure_optional(shape: OptionalShape) -> StructureHook:
    inner = shape.inner
    structure_inner = converter.get_structure_hook(inner)

    def structure(value: Any, _: Any) -> Any:
        if value is None:
            return None
        return structure_inner(value, inner)

    return structure


# --- unstructuring: Python value -> msgpack-ready data ----------------------------------------


def _unstructure_int(shape: IntShape) -> UnstructureHook:
    low, high, label = shape.low, shape.high, shape.label

    def unstructure(value: Any) -> int:
        # int subclasses (IntEnum) are fine; bool is not an integer here.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueMismatchError(label, value)
        number = int(value)
        if low <= number <= high:
            return number
        raise ValueMismatchError(label, value, f"outside {low}..{high}")

    return unstructure


def _unstructure_float(shape: FloatShape) -> UnstructureHook:
    label = shape.label
    narrow = shape.width is FloatWidth.FLOAT32

    def unstructure(value: Any) -> float:
        if type(value) is float and not narrow:
            return value
        # An int where a float is declared is fine (PEP 484's numeric tower); bool is not.
        if isinstance(value, float | int) and not isinstance(value, bool):
            return _to_float(value, label, narrow=narrow)
        raise ValueMismatchError(label, value)

    return unstructure


def _unstructure_bool(_shape: BoolShape) -> UnstructureHook:
    def unstructure(value: Any) -> bool:
        if value is True or value is False:
            return value
        raise ValueMismatchError("bool", value)

    return unstructure


def _unstructure_bytes(_shape: BytesShape) -> UnstructureHook:
    def unstructure(value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise ValueMismatchError("bytes", value)

    return unstructure


def _unstructure_str(_shape: StrShape) -> UnstructureHook:
    def unstructure(value: Any) -> str:
        if isinstance(value, str):
            return str(value)
        raise ValueMismatchError("str", value)

    return unstructure


def _unstructure_list(shape: ListShape) -> UnstructureHook:
    item = shape.item
    unstructure_item = converter.get_unstructure_hook(item)

    def unstructure(value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ValueMismatchError(f"a list of {_label(item)}", value)
        result = []
        for index, element in enumerate(value):
            try:
                result.append(unstructure_item(element))
            except ValueMismatchError as exc:
                raise exc.at(f"[{index}]") from None
        return result

    return unstructure


def _unstructure_map(shape: MapShape) -> UnstructureHook:
    key_type, value_type = shape.key, shape.value
    unstructure_key = converter.get_unstructure_hook(key_type)
    unstructure_value = converter.get_unstructure_hook(value_type)

    def unstructure(value: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise ValueMismatchError(f"a map of {_label(key_type)} to {_label(value_type)}", value)
        result = {}
        for key, element in value.items():
            try:
                packed_key = unstructure_key(key)
            except ValueMismatchError as exc:
                raise exc.at(f"[key {show(key)}]") from None
            try:
                result[packed_key] = unstructure_value(element)
            except ValueMismatchError as exc:
                raise exc.at(f"[{key!r}]") from None
        return result

    return unstructure


def _unstructure_struct(shape: StructShape) -> UnstructureHook:
    cls, label, fields = shape.cls, shape.label, shape.fields
    hooks: list[UnstructureHook] = []

    def unstructure(value: Any) -> list[Any]:
        if not isinstance(value, cls):
            raise ValueMismatchError(label, value)
        if not hooks:
            hooks.extend(converter.get_unstructure_hook(field.annotation) for field in fields)
        result = []
        for field, hook in zip(fields, hooks, strict=True):
            try:
                result.append(hook(getattr(value, field.name)))
            except ValueMismatchError as exc:
                raise exc.at(f".{field.name}") from None
        return result

    return unstructure


def _unstructure_optional(shape: OptionalShape) -> UnstructureHook:
    unstructure_inner = converter.get_unstructure_hook(shape.inner)

    def unstructure(value: Any) -> Any:
        if value is None:
            return None
        return unstructure_inner(value)

    return unstructure


# --- shared helpers and the converter ---------------------------------------------------------


def _to_float(value: float, label: str, *, narrow: bool) -> float:
    try:
        wide = float(value)
        # A float32 is carried as the float64 of its nearest float32 (see docs/tdl.md).
        return _F32.unpack(_F32.pack(wide))[0] if narrow else wide
    except OverflowError:
        raise ValueMismatchError(label, value, "out of range") from None


def _label(annotation: Any) -> str:
    return classify(annotation).label


_STRUCTURE_BUILDERS: Final[dict[type, Callable[[Any], StructureHook]]] = {
    IntShape: _structure_int,
    FloatShape: _structure_float,
    BoolShape: _structure_bool,
    BytesShape: _structure_bytes,
    StrShape: _structure_str,
    ListShape: _structure_list,
    MapShape: _structure_map,
    StructShape: _structure_struct,
    OptionalShape: _structure_optional,
}
_UNSTRUCTURE_BUILDERS: Final[dict[type, Callable[[Any], UnstructureHook]]] = {
    IntShape: _unstructure_int,
    FloatShape: _unstructure_float,
    BoolShape: _unstructure_bool,
    BytesShape: _unstructure_bytes,
    StrShape: _unstructure_str,
    ListShape: _unstructure_list,
    MapShape: _unstructure_map,
    StructShape: _unstructure_struct,
    OptionalShape: _unstructure_optional,
}


def _structure_hook_for(annotation: Any) -> StructureHook:
    shape: Shape = classify(annotation)
    return _STRUCTURE_BUILDERS[type(shape)](shape)


def _unstructure_hook_for(annotation: Any) -> UnstructureHook:
    shape: Shape = classify(annotation)
    return _UNSTRUCTURE_BUILDERS[type(shape)](shape)


def _any_annotation(_annotation: Any) -> bool:
    # Every annotation reaching the converter was validated by ``describe``: our factories
    # own them all, none of cattrs's lenient defaults (``int("3")``) may apply.
    return True


converter: Final = cattrs.BaseConverter()
converter.register_structure_hook_factory(_any_annotation, _structure_hook_for)
converter.register_unstructure_hook_factory(_any_annotation, _unstructure_hook_for)
# cattrs dispatches these classes directly, ahead of any factory: override them by name.
for _primitive in (int, float, bool, bytes, str):
    converter.register_structure_hook(_primitive, _structure_hook_for(_primitive))
    converter.register_unstructure_hook(_primitive, _unstructure_hook_for(_primitive))
