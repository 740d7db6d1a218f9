"""What a job needs to know about a task: its TDL name and its typed inputs and outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from spider.client.errors import JobDefinitionError
from spider.core.data_types import DataType
from spider.core.errors import TaskGraphError
from spider.core.task_graph import TdlContext
from spider.tdl import TdlDefinitionError, definition_of, describe


@attrs.frozen
class TaskSpec:
    """A task as a job sees it: where it runs, and its inputs and outputs as annotations.

    Build one from a ``@task`` function with ``TaskSpec.of(fn)`` (done for you by
    ``JobBuilder.add``), or declare a task whose code is not importable here, for example a
    Rust task, with ``TaskSpec.remote("complex", "complex::add", [Complex, Complex], [Complex])``.
    """

    tdl_context: TdlContext
    input_names: tuple[str, ...]
    input_annotations: tuple[Any, ...]
    inputs: tuple[DataType, ...]
    output_annotations: tuple[Any, ...]
    outputs: tuple[DataType, ...]

    @property
    def name(self) -> str:
        """The task's TDL name (``task_func``)."""
        return self.tdl_context.task_func

    @classmethod
    def of(cls, function: Callable[..., Any]) -> TaskSpec:
        """The spec of a ``@task`` function; ``JobDefinitionError`` for anything else."""
        try:
            definition = definition_of(function)
        except TdlDefinitionError as exc:
            raise JobDefinitionError(
                f"{exc}; decorate it with @spider.tdl.task, or declare a task that is not "
                "importable here with TaskSpec.remote(package, name, inputs, outputs)"
            ) from None
        signature = definition.signature
        return cls(
            definition.tdl_context,
            signature.input_names,
            signature.input_annotations,
            signature.inputs,
            signature.output_annotations,
            signature.outputs,
        )

    @classmethod
    def remote(
        cls,
        package: str,
        name: str,
        inputs: Sequence[Any] = (),
        outputs: Sequence[Any] = (),
    ) -> TaskSpec:
        """A task named ``name`` in TDL package ``package``, typed by Python annotations."""
        try:
            context = TdlContext(package, name)
            input_types = tuple(describe(annotation) for annotation in inputs)
            output_types = tuple(describe(annotation) for annotation in outputs)
        except (TdlDefinitionError, TaskGraphError) as exc:
            raise JobDefinitionError(f"task {name!r} of package {package!r}: {exc}") from None
        return cls(
            context,
            tuple(f"input{position}" for position in range(len(input_types))),
            tuple(inputs),
            input_types,
            tuple(outputs),
            output_types,
        )


def spec_of(task: TaskSpec | Callable[..., Any]) -> TaskSpec:
    """``task`` itself if it is a spec, else the spec of the ``@task`` function."""
    return task if isinstance(task, TaskSpec) else TaskSpec.of(task)
