"""One value's msgpack codec for a declared type, and the commit task's view of job outputs."""

from __future__ import annotations

import functools
from typing import Any, Final

import attrs
import ormsgpack

from spider.core.data_types import DataType
from spider.core.errors import CodecError
from spider.core.task_context import TaskContext
from spider.tdl._converter import StructureHook, UnstructureHook, ValueMismatchError, converter
from spider.tdl._errors import TdlDeserializationError, TdlSerializationError
from spider.tdl._types import describe

# Maps may have int or bytes keys; without this option ormsgpack only handles str keys.
_MSGPACK_OPTIONS: Final = ormsgpack.OPT_NON_STR_KEYS


@attrs.frozen(eq=False)
class ValueCodec:
    """Encodes and decodes one msgpack payload of a declared type, validating both ways.

    Build with ``value_codec(annotation)``. ``where`` names the value in error messages
    (``task 'add', input 'b' (position 1)``).
    """

    annotation: Any
    data_type: DataType
    _structure: StructureHook = attrs.field(repr=False)
    _unstructure: UnstructureHook = attrs.field(repr=False)

    def encode(self, value: Any, where: str = "value") -> bytes:
        """The msgpack payload of ``value``; ``TdlSerializationError`` if it does not fit."""
        try:
            data = self._unstructure(value)
        except ValueMismatchError as exc:
            raise TdlSerializationError(f"{where}: {exc.describe()}") from None
        try:
            return ormsgpack.packb(data, option=_MSGPACK_OPTIONS)
        except ormsgpack.MsgpackEncodeError as exc:
            # What validation cannot see, e.g. a str holding lone surrogates.
            raise TdlSerializationError(f"{where}: cannot encode as msgpack: {exc}") from exc

    def decode(self, payload: bytes, where: str = "value") -> Any:
        """The value in a msgpack payload; ``TdlDeserializationError`` if it does not fit."""
        try:
            data = ormsgpack.unpackb(payload, option=_MSGPACK_OPTIONS)
        except (ormsgpack.MsgpackDecodeError, TypeError) as exc:
            raise TdlDeserializationError(f"{where}: not a valid msgpack value: {exc}") from exc
        try:
            return self._structure(data, self.annotation)
        except ValueMismatchError as exc:
            raise TdlDeserializationError(f"{where}: {exc.describe()}") from None


@functools.cache
def value_codec(annotation: Any) -> ValueCodec:
    """The (cached) codec of a value annotation; ``TdlDefinitionError`` if it is unsupported."""
    data_type = describe(annotation)
    return ValueCodec(
        annotation,
        data_type,
        converter.get_structure_hook(annotation),
        converter.get_unstructure_hook(annotation),
    )


def job_outputs(ctx: TaskContext, types: Any) -> list[Any]:
    """The job's outputs, decoded, in a commit task.

    ``types`` is either one annotation that every output has (``job_outputs(ctx, int)``), or a
    ``list`` of annotations, one per output (``job_outputs(ctx, [int, bytes])``), whose length
    must match. Raises ``TdlDeserializationError`` outside a commit task, or if an output does
    not decode as declared.
    """
    try:
        payloads = ctx.task_graph_outputs()
    except CodecError as exc:
        raise TdlDeserializationError(f"job outputs: {exc}") from exc
    if isinstance(types, list):
        if len(types) != len(payloads):
            raise TdlDeserializationError(
                f"job outputs: expected {len(types)} values, the job has {len(payloads)}"
            )
        codecs = [value_codec(annotation) for annotation in types]
    else:
        codecs = [value_codec(types)] * len(payloads)
    return [
        codec.decode(payload, f"job output {position}")
        for position, (codec, payload) in enumerate(zip(codecs, payloads, strict=True))
    ]
