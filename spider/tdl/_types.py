"""The value types a task may declare, and their Spider type descriptors.

An annotation is classified one level at a time into a *shape* (``classify``); children stay
annotations so that the converter can cache one hook per annotation, and recursive structs work.
``describe`` walks the whole annotation, so an unsupported type anywhere inside is reported at
decoration time.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Final

import attrs

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
from spider.tdl._errors import TdlDefinitionError

int8 = Annotated[int, IntWidth.INT8]
int16 = Annotated[int, IntWidth.INT16]
int32 = Annotated[int, IntWidth.INT32]
int64 = Annotated[int, IntWidth.INT64]
float32 = Annotated[float, FloatWidth.FLOAT32]
float64 = Annotated[float, FloatWidth.FLOAT64]
double = float64

STRUCT_NAME_ATTRIBUTE: Final = "__spider_struct_name__"

_C = typing.TypeVar("_C", bound=type)

_INT_BITS: Final = {IntWidth.INT8: 8, IntWidth.INT16: 16, IntWidth.INT32: 32, IntWidth.INT64: 64}


class UnsupportedTypeError(TdlDefinitionError):
    """An annotation that is not a value type the TDL can encode."""


@attrs.frozen
class IntShape:
    width: IntWidth
    low: int
    high: int

    @property
    def label(self) -> str:
        return self.width.value.lower()


@attrs.frozen
class FloatShape:
    width: FloatWidth

    @property
    def label(self) -> str:
        return self.width.value.lower()


@attrs.frozen
class BoolShape:
    label = "bool"


@attrs.frozen
class BytesShape:
    label = "bytes"


@attrs.frozen
class StrShape:
    label = "str"


@attrs.frozen
class ListShape:
    item: Any
    label = "list"


@attrs.frozen
class MapShape:
    key: Any
    value: Any
    label = "map"


@attrs.frozen
class StructField:
    name: str
    alias: str
    annotation: Any
    kw_only: bool


@attrs.frozen
class StructShape:
    cls: type
    name: str
    fields: tuple[StructField, ...]

    @property
    def label(self) -> str:
        return f"struct {self.name} ({len(self.fields)} fields)"


@attrs.frozen
class OptionalShape:
    inner: Any

    label = "optional"


Shape = (
    IntShape
    | FloatShape
    | BoolShape
    | BytesShape
    | StrShape
    | ListShape
    | MapShape
    | StructShape
    | OptionalShape
)


def struct_name(name: str) -> typing.Callable[[_C], _C]:
    """Class decorator: the name of this attrs class in type descriptors.

    Without it a struct is named by its ``__qualname__`` (``Complex``, ``Outer.Inner``). Use it
    to match the name another Spider client gives the same struct, or to tell apart two classes
    with the same ``__qualname__`` in different modules.
    """
    if not isinstance(name, str) or not name:
        raise TdlDefinitionError(f"a struct name must be a non-empty string, got {name!r}")

    def apply(cls: _C) -> _C:
        setattr(cls, STRUCT_NAME_ATTRIBUTE, name)
        return cls

    return apply


def classify(annotation: Any) -> Shape:
    """The shape of ``annotation`` (one level); ``UnsupportedTypeError`` if it cannot be a value."""
    if annotation is int:
        return _int_shape(IntWidth.INT64)
    if annotation is float:
        return FloatShape(FloatWidth.FLOAT64)
    if annotation is bool:
        return BoolShape()
    if annotation is bytes:
        return BytesShape()
    if annotation is str:
        return StrShape()
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _classify_annotated(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        if item is None:
            raise UnsupportedTypeError("a list needs its item type, e.g. list[int]")
        return ListShape(item)
    if origin is dict:
        args = typing.get_args(annotation)
        if len(args) != 2:
            raise UnsupportedTypeError(
                "a dict needs its key and value types, e.g. dict[int, bytes]"
            )
        key_shape = classify(args[0])
        if not isinstance(key_shape, IntShape | BytesShape | StrShape):
            raise UnsupportedTypeError(
                f"map keys must be int or bytes (or str, Python-only), not {_name(args[0])}"
            )
        return MapShape(args[0], args[1])
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            return OptionalShape(members[0])
        raise UnsupportedTypeError(
            f"{_name(annotation)}: only `T | None` unions are supported (Spider has no union type)"
        )
    if isinstance(annotation, type) and attrs.has(annotation):
        return _struct_shape(annotation)
    if annotation is None or annotation is type(None):
        raise UnsupportedTypeError("None is only allowed as `T | None` or as a return annotation")
    if annotation in (list, dict):
        raise UnsupportedTypeError(f"a bare {annotation.__name__} needs its item types")
    if annotation is tuple or origin is tuple:
        raise UnsupportedTypeError(
            "tuples are only allowed as a return annotation (several outputs)"
        )
    raise UnsupportedTypeError(
        f"{_name(annotation)} is not a supported value type (use int, float, bool, bytes, str, "
        "list[T], dict[K, V], an attrs class, T | None, or the sized aliases int8..float64)"
    )


def describe(annotation: Any) -> DataType:
    """Spider's type descriptor for a value annotation.

    Raises ``UnsupportedTypeError`` (a ``TdlDefinitionError``) if the annotation, or any type inside
    it, cannot be a task value.
    """
    return DataType(_describe_value(annotation, set()))


def _describe_value(annotation: Any, structs_seen: set[type]) -> ValueType:
    shape = classify(annotation)
    match shape:
        case IntShape(width=width):
            return IntType(width)
        case FloatShape(width=width):
            return FloatType(width)
        case BoolShape():
            return BoolType()
        case BytesShape() | StrShape():
            # Spider has no string type: str is described as bytes (see docs/tdl.md).
            return BytesType()
        case ListShape(item=item):
            return ListType(_describe_value(item, structs_seen))
        case MapShape(key=key, value=value):
            key_type = _describe_value(key, structs_seen)
            assert isinstance(key_type, IntType | BytesType)
            return MapType(key_type, _describe_value(value, structs_seen))
        case OptionalShape(inner=inner):
            # Spider has no option type either: nullability is a Python-side detail.
            return _describe_value(inner, structs_seen)
        case StructShape(cls=cls, name=name, fields=fields):
            if cls not in structs_seen:
                structs_seen.add(cls)
                for field in fields:
                    try:
                        _describe_value(field.annotation, structs_seen)
                    except UnsupportedTypeError as exc:
                        raise UnsupportedTypeError(f"{name}.{field.name}: {exc}") from None
            return StructType(name)


def _int_shape(width: IntWidth) -> IntShape:
    bits = _INT_BITS[width]
    return IntShape(width, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _classify_annotated(annotation: Any) -> Shape:
    base, *metadata = typing.get_args(annotation)
    widths = [item for item in metadata if isinstance(item, IntWidth | FloatWidth)]
    if not widths:
        # Metadata meant for other tools does not change the value type.
        return classify(base)
    if len(widths) > 1:
        raise UnsupportedTypeError(f"{_name(annotation)} gives more than one width")
    (width,) = widths
    if isinstance(width, IntWidth):
        if base is not int:
            raise UnsupportedTypeError(f"{width.value} applies to int, not {_name(base)}")
        return _int_shape(width)
    if base is not float:
        raise UnsupportedTypeError(f"{width.value} applies to float, not {_name(base)}")
    return FloatShape(width)


def _struct_shape(cls: type) -> StructShape:
    try:
        attrs.resolve_types(cls)
    except NameError as exc:
        raise UnsupportedTypeError(
            f"cannot resolve the field types of {cls.__qualname__}: {exc}"
        ) from exc
    fields: list[StructField] = []
    for field in attrs.fields(cls):
        if not field.init:
            raise UnsupportedTypeError(
                f"{cls.__qualname__}.{field.name} has init=False: every field of a struct "
                "travels on the wire and must be settable"
            )
        if field.type is None:
            raise UnsupportedTypeError(f"{cls.__qualname__}.{field.name} has no type annotation")
        fields.append(StructField(field.name, field.alias, field.type, field.kw_only))
    name = getattr(cls, STRUCT_NAME_ATTRIBUTE, None) or cls.__qualname__
    return StructShape(cls, name, tuple(fields))


def _name(annotation: Any) -> str:
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
