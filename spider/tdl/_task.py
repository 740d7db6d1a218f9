"""A registered task and the pipeline that runs it on wire bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from spider.core.errors import CodecError
from spider.core.task_context import TaskContext
from spider.core.task_graph import TdlContext
from spider.core.wire import EMPTY_FRAME, decode_frame, encode_frame
from spider.tdl._codec import ValueCodec, value_codec
from spider.tdl._converter import show
from spider.tdl._errors import (
    TaskExecutionError,
    TdlDeserializationError,
    TdlSerializationError,
)
from spider.tdl._signature import TaskSignature


@attrs.frozen(eq=False)
class TaskDefinition:
    """A ``@task`` function registered in a package, with its codecs prepared.

    Building one reads nothing per call later: the input decoders, output encoders and the text
    naming each value in error messages are all made here.
    """

    name: str
    package: str
    function: Callable[..., Any]
    signature: TaskSignature
    _decoders: tuple[tuple[ValueCodec, str], ...] = attrs.field(init=False, repr=False)
    _encoders: tuple[tuple[ValueCodec, str], ...] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        signature = self.signature
        decoders = tuple(
            (value_codec(annotation), f"task {self.name!r}, input {name!r} (position {position})")
            for position, (name, annotation) in enumerate(
                zip(signature.input_names, signature.input_annotations, strict=True)
            )
        )
        encoders = tuple(
            (value_codec(annotation), f"task {self.name!r}, output {position}")
            for position, annotation in enumerate(signature.output_annotations)
        )
        # Frozen: these are set once, here, and never again.
        object.__setattr__(self, "_decoders", decoders)
        object.__setattr__(self, "_encoders", encoders)

    @property
    def tdl_context(self) -> TdlContext:
        """The ``tdl_context`` that names this task in a task graph (``spider.core.task_graph``)."""
        return TdlContext(self.package, self.name)

    def execute(self, raw_ctx: bytes, raw_inputs: bytes) -> bytes:
        """Run the task on a msgpack ``TaskContext`` and an input wire frame.

        Returns the output wire frame. Raises ``TdlDeserializationError`` for a bad context,
        frame or input, ``TaskExecutionError`` if the function raises, and
        ``TdlSerializationError`` if its return value does not match the declared outputs.
        """
        try:
            ctx = TaskContext.decode(raw_ctx)
        except CodecError as exc:
            raise TdlDeserializationError(f"task {self.name!r}: {exc}") from exc
        try:
            payloads = decode_frame(raw_inputs, expected=len(self._decoders))
        except CodecError as exc:
            raise TdlDeserializationError(f"task {self.name!r}: inputs: {exc}") from exc
        args = [
            codec.decode(payload, where)
            for (codec, where), payload in zip(self._decoders, payloads, strict=True)
        ]
        try:
            if self.signature.takes_context:
                result = self.function(ctx, *args)
            else:
                result = self.function(*args)
        except Exception as exc:
            # BaseExceptions (SystemExit, KeyboardInterrupt) are the executor's to handle.
            raise TaskExecutionError.from_exception(self.name, exc) from exc
        return self._encode_outputs(result)

    def _encode_outputs(self, result: Any) -> bytes:
        encoders = self._encoders
        if self.signature.returns_tuple:
            if not isinstance(result, tuple) or len(result) != len(encoders):
                raise TdlSerializationError(
                    f"task {self.name!r} must return a tuple of {len(encoders)} outputs, "
                    f"got {show(result)}"
                )
            payloads = [
                codec.encode(value, where)
                for (codec, where), value in zip(encoders, result, strict=True)
            ]
        elif encoders:
            codec, where = encoders[0]
            payloads = [codec.encode(result, where)]
        elif result is None:
            return EMPTY_FRAME
        else:
            raise TdlSerializationError(
                f"task {self.name!r} declares no outputs (`-> None`) but returned {show(result)}"
            )
        try:
            return encode_frame(payloads)
        except CodecError as exc:
            raise TdlSerializationError(f"task {self.name!r}: outputs: {exc}") from exc
