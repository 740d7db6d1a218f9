"""A task's signature read from its annotations: context, typed inputs, typed outputs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import attrs

from spider.core.data_types import DataType
from spider.core.task_context import TaskContext
from spider.tdl._errors import TdlDefinitionError
from spider.tdl._types import UnsupportedTypeError, describe


@attrs.frozen
class TaskSignature:
    """What a task takes and returns, as Spider type descriptors and as Python annotations.

    ``returns_tuple`` is true when the return annotation is a ``tuple[...]``: the function then
    returns a tuple with one item per output (even for a single output, ``tuple[int]``).
    """

    takes_context: bool
    input_names: tuple[str, ...]
    input_annotations: tuple[Any, ...]
    inputs: tuple[DataType, ...]
    output_annotations: tuple[Any, ...]
    outputs: tuple[DataType, ...]
    returns_tuple: bool


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def signature_of(function: Callable[..., Any], task_name: str) -> TaskSignature:
    """Read and check the signature of the function registered as ``task_name``."""
    where = f"task {task_name!r} ({function.__module__}.{function.__qualname__})"
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        # Annotations are evaluated here: any error in them is the author's to fix.
        raise TdlDefinitionError(f"{where}: cannot evaluate its annotations: {exc}") from exc
    parameters = list(inspect.signature(function).parameters.values())
    takes_context = bool(parameters) and hints.get(parameters[0].name) is TaskContext
    if takes_context:
        parameters = parameters[1:]
    names: list[str] = []
    annotations: list[Any] = []
    inputs: list[DataType] = []
    for position, parameter in enumerate(parameters):
        label = f"{where}: parameter {parameter.name!r}"
        if parameter.kind not in _POSITIONAL:
            raise TdlDefinitionError(
                f"{label} is {parameter.kind.description}: task inputs are positional parameters"
            )
        if parameter.name not in hints:
            raise TdlDefinitionError(
                f"{label} has no type annotation: annotate every input, e.g. `{parameter.name}: int`"
            )
        annotation = hints[parameter.name]
        if annotation is TaskContext:
            raise TdlDefinitionError(
                f"{label}: a TaskContext must be the first parameter, not input {position}"
            )
        try:
            inputs.append(describe(annotation))
        except UnsupportedTypeError as exc:
            raise TdlDefinitionError(f"{label}: {exc}") from None
        names.append(parameter.name)
        annotations.append(annotation)
    output_annotations, returns_tuple = _outputs(where, hints)
    outputs: list[DataType] = []
    for position, annotation in enumerate(output_annotations):
        try:
            outputs.append(describe(annotation))
        except UnsupportedTypeError as exc:
            raise TdlDefinitionError(f"{where}: output {position}: {exc}") from None
    return TaskSignature(
        takes_context=takes_context,
        input_names=tuple(names),
        input_annotations=tuple(annotations),
        inputs=tuple(inputs),
        output_annotations=output_annotations,
        outputs=tuple(outputs),
        returns_tuple=returns_tuple,
    )


def _outputs(where: str, hints: dict[str, Any]) -> tuple[tuple[Any, ...], bool]:
    if "return" not in hints:
        raise TdlDefinitionError(
            f"{where} has no return annotation: write `-> None` for no outputs, "
            "`-> T` for one, `-> tuple[A, B]` for several"
        )
    annotation = hints["return"]
    if annotation is None or annotation is type(None):
        return (), False
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if Ellipsis in items:
            raise TdlDefinitionError(
                f"{where}: return annotation {annotation!r} has no fixed length; "
                "list every output, e.g. `tuple[int, bytes]`, or return a `list[T]`"
            )
        return items, True
    if annotation is tuple:
        raise TdlDefinitionError(f"{where}: a bare `tuple` return needs its item types")
    return (annotation,), False
