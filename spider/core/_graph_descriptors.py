"""What a graph is built from: task descriptors, their TDL context and their input sources."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from spider.core._graph_policy import ExecutionPolicy, policy_or_default
from spider.core._graph_types import is_utf8_encodable
from spider.core.bounds import MAX_NAME_CHARS, check_length, quoted
from spider.core.data_types import DataType
from spider.core.errors import TaskGraphError


def _check_name(instance: TdlContext, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise TaskGraphError(
            f"invalid TDL context: {attribute.name} must be a string, got {type(value).__name__}"
        )
    # The length first: the rest of the checks and any message must not scale with it.
    too_long = check_length(value, MAX_NAME_CHARS, attribute.name)
    if too_long is not None:
        raise TaskGraphError(f"invalid TDL context: {too_long}")
    if not is_utf8_encodable(value):
        raise TaskGraphError(
            f"invalid TDL context: {attribute.name} must be a string encodable as UTF-8, "
            f"got {quoted(value)}"
        )


@attrs.frozen
class TdlContext:
    """Which TDL package and which task in it run a task (``task_func`` as in ``"ns::fn"``)."""

    package: str = attrs.field(validator=_check_name)
    task_func: str = attrs.field(validator=_check_name)


@attrs.frozen
class InputSource:
    """A position on a task: output ``position`` of task ``task_idx`` when used as a source.

    The same pair also addresses a task's input (``TaskGraph.consumers``) or a graph input or
    output (``TaskGraph.graph_inputs``), as Spider's ``TaskInputOutputIndex`` does.
    """

    task_idx: int
    position: int


def _data_types(values: Iterable[DataType]) -> tuple[DataType, ...]:
    return tuple(values)


def _optional_sources(values: Iterable[InputSource] | None) -> tuple[InputSource, ...] | None:
    return None if values is None else tuple(values)


@attrs.frozen
class TaskDescriptor:
    """Everything ``TaskGraph.insert_task`` needs to add one task.

    ``input_sources`` is ``None`` for an input task, whose inputs are all graph inputs; otherwise
    it names, for each input in order, the output of an earlier task that feeds it.
    ``execution_policy=None`` means the default policy.
    """

    tdl_context: TdlContext
    inputs: tuple[DataType, ...] = attrs.field(converter=_data_types)
    outputs: tuple[DataType, ...] = attrs.field(converter=_data_types)
    execution_policy: ExecutionPolicy = attrs.field(default=None, converter=policy_or_default)
    input_sources: tuple[InputSource, ...] | None = attrs.field(
        default=None, converter=_optional_sources
    )

    @property
    def is_input_task(self) -> bool:
        """True if every input is a graph input (the task has no parents)."""
        return self.input_sources is None


@attrs.frozen
class TerminationTaskDescriptor:
    """The commit or cleanup task of a job: no inputs, no outputs, default policy if ``None``."""

    tdl_context: TdlContext
    execution_policy: ExecutionPolicy = attrs.field(default=None, converter=policy_or_default)
