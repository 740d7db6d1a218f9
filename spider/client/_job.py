"""Building a job from ``@task`` functions: tasks, explicit wiring, job inputs as values.

Spider's graph rule shapes the API: a task reads either only graph inputs (an *input task*, whose
arguments are Python values that become job inputs) or only outputs of earlier tasks (every
argument a ``TaskOutput``). Tasks are added in topological order, so a graph built here can
never have a cycle or a forward reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from spider.client._task_spec import TaskSpec, spec_of
from spider.client.errors import JobDefinitionError
from spider.core._graph_types import describe_data_type
from spider.core.errors import TaskGraphError
from spider.core.task_graph import (
    DEFAULT_FIRST_RETRY_DELAY_MS,
    DEFAULT_MAX_RETRY_DELAY_MS,
    ExecutionPolicy,
    InputSource,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TerminationTaskDescriptor,
    TimeoutPolicy,
    encode_job_inputs,
    encode_task_graph,
)
from spider.tdl import TdlSerializationError, value_codec

TaskLike = TaskSpec | Callable[..., Any]


def execution_policy(
    *,
    retries: int = 0,
    instances: int = 1,
    soft_timeout_ms: int = 150_000,
    hard_timeout_ms: int = 300_000,
    retry_delay_ms: int = DEFAULT_FIRST_RETRY_DELAY_MS,
    max_retry_delay_ms: int = DEFAULT_MAX_RETRY_DELAY_MS,
) -> ExecutionPolicy:
    """A task's execution policy, with Spider's defaults (and Spider-py's retry delay).

    ``retries``: failures tolerated before the task fails the job. ``instances``: how many
    copies may run at once (a copy is started again after the soft timeout). The EM kills a task
    at ``hard_timeout_ms`` and counts it as a failure. Timeouts are 100 ms to 24 h, hard > soft.
    Before retry *n*, storage waits between half and all of ``min(max_retry_delay_ms,
    retry_delay_ms * 2**(n-1))``; ``retry_delay_ms=0, max_retry_delay_ms=0`` retries at once.
    """
    try:
        return ExecutionPolicy(
            retries,
            instances,
            TimeoutPolicy(soft_timeout_ms, hard_timeout_ms),
            RetryDelay(retry_delay_ms, max_retry_delay_ms),
        )
    except TaskGraphError as exc:
        raise JobDefinitionError(str(exc)) from None


@attrs.frozen
class TaskOutput:
    """Output ``position`` of task ``task_index`` of a job being built; pass it as an input."""

    builder_id: int = attrs.field(repr=False)
    task_index: int
    position: int
    task_name: str


@attrs.frozen
class TaskHandle:
    """A task added to a job. ``handle[i]`` is its output ``i``; a one-output task's handle
    may be passed as an input itself."""

    builder_id: int = attrs.field(repr=False)
    index: int
    spec: TaskSpec

    @property
    def outputs(self) -> tuple[TaskOutput, ...]:
        """Every output of the task, in order."""
        return tuple(
            TaskOutput(self.builder_id, self.index, position, self.spec.name)
            for position in range(len(self.spec.outputs))
        )

    def __getitem__(self, position: int) -> TaskOutput:
        outputs = self.outputs
        if not -len(outputs) <= position < len(outputs):
            raise JobDefinitionError(
                f"task {self.index} ({self.spec.name!r}) has {len(outputs)} output(s); "
                f"there is no output {position}"
            )
        return outputs[position]


@attrs.frozen
class JobDescription:
    """A finished job: its task graph, its encoded inputs and how to read its outputs.

    ``input_payloads`` are msgpack, one per graph input in graph-input order.
    ``output_annotations`` (one per graph output, in order) decode the outputs, or is ``None``
    when the job was described without Python types (a JSON description).
    ``output_labels`` name the outputs for people: ``"double[1].0"`` is output 0 of task 1.
    """

    graph: TaskGraph
    input_payloads: tuple[bytes, ...]
    output_annotations: tuple[Any, ...] | None
    output_labels: tuple[str, ...]

    def encode(self) -> tuple[bytes, bytes]:
        """``RegisterJob``'s two blobs: zstd of the graph's JSON, zstd of the input frame."""
        return encode_task_graph(self.graph), encode_job_inputs(self.input_payloads)


@attrs.define(eq=False)
class _AddedTask:
    spec: TaskSpec
    policy: ExecutionPolicy | None
    sources: tuple[InputSource, ...] | None


@attrs.define(eq=False)
class JobBuilder:
    """Collects the tasks of one job; ``build()`` gives the ``JobDescription`` to submit.

    Synopsis::

        job = JobBuilder()
        total = job.add(add, 1, 2)           # an input task: 1 and 2 become job inputs
        job.add(double, total)               # wired to add's output
        job.commit(publish)                  # optional commit and cleanup tasks
        description = job.build()
    """

    _tasks: list[_AddedTask] = attrs.field(factory=list, init=False)
    _input_payloads: list[bytes] = attrs.field(factory=list, init=False)
    _commit: TerminationTaskDescriptor | None = attrs.field(default=None, init=False)
    _cleanup: TerminationTaskDescriptor | None = attrs.field(default=None, init=False)

    def add(
        self, task: TaskLike, /, *inputs: Any, policy: ExecutionPolicy | None = None
    ) -> TaskHandle:
        """Add ``task`` with one argument per input, in order; return its handle.

        Either every argument is a Python value (the task reads job inputs, encoded with the
        input's declared type), or every argument is a ``TaskOutput`` / one-output
        ``TaskHandle`` of this job whose type equals the input's. ``policy`` (see
        ``execution_policy``) sets retries, instances and timeouts.
        """
        spec = spec_of(task)
        index = len(self._tasks)
        where = f"task {index} ({spec.name!r})"
        if len(inputs) != len(spec.inputs):
            raise JobDefinitionError(self._count_message(where, spec, len(inputs)))
        if policy is not None and not isinstance(policy, ExecutionPolicy):
            raise JobDefinitionError(
                f"{where}: policy must be an ExecutionPolicy (see execution_policy()), "
                f"got {type(policy).__name__}"
            )
        wired = [self._as_output(argument, where) for argument in inputs]
        if any(output is not None for output in wired):
            sources = self._sources(where, spec, inputs, wired)
            self._tasks.append(_AddedTask(spec, policy, sources))
        else:
            payloads = self._encode_values(where, spec, inputs)
            self._tasks.append(_AddedTask(spec, policy, None))
            self._input_payloads.extend(payloads)
        return TaskHandle(id(self), index, spec)

    def commit(self, task: TaskLike, /, *, policy: ExecutionPolicy | None = None) -> None:
        """Run ``task`` once every task has succeeded; it sees the job's outputs in its context."""
        self._commit = self._termination("commit", task, policy)

    def cleanup(self, task: TaskLike, /, *, policy: ExecutionPolicy | None = None) -> None:
        """Run ``task`` when the job is cancelled."""
        self._cleanup = self._termination("cleanup", task, policy)

    def build(self) -> JobDescription:
        """The job as it will be submitted; ``JobDefinitionError`` if it has no task."""
        if not self._tasks:
            raise JobDefinitionError("a job needs at least one task; add one with add()")
        try:
            graph = TaskGraph(commit_task=self._commit, cleanup_task=self._cleanup)
            for added in self._tasks:
                graph.insert_task(
                    TaskDescriptor(
                        added.spec.tdl_context,
                        added.spec.inputs,
                        added.spec.outputs,
                        execution_policy=added.policy,
                        input_sources=added.sources,
                    )
                )
        except TaskGraphError as exc:
            # add() checks every rule first; reaching here means a check is missing there.
            raise JobDefinitionError(str(exc)) from exc
        annotations = []
        labels = []
        for source in graph.graph_outputs():
            spec = self._tasks[source.task_idx].spec
            annotations.append(spec.output_annotations[source.position])
            labels.append(f"{spec.name}[{source.task_idx}].{source.position}")
        return JobDescription(graph, tuple(self._input_payloads), tuple(annotations), tuple(labels))

    def _as_output(self, argument: Any, where: str) -> TaskOutput | None:
        if isinstance(argument, TaskHandle):
            if len(argument.spec.outputs) != 1:
                raise JobDefinitionError(
                    f"{where}: task {argument.index} ({argument.spec.name!r}) has "
                    f"{len(argument.spec.outputs)} outputs; pass one of them, as handle[i]"
                )
            argument = argument[0]
        if not isinstance(argument, TaskOutput):
            return None
        if argument.builder_id != id(self):
            raise JobDefinitionError(
                f"{where}: {argument} belongs to another job; wire outputs of this job only"
            )
        return argument

    def _sources(
        self,
        where: str,
        spec: TaskSpec,
        inputs: Sequence[Any],
        wired: Sequence[TaskOutput | None],
    ) -> tuple[InputSource, ...]:
        sources = []
        for position, (argument, output) in enumerate(zip(inputs, wired, strict=True)):
            name = spec.input_names[position]
            if output is None:
                raise JobDefinitionError(
                    f"{where}: input {name!r} (position {position}) is the value "
                    f"{argument!r}, but other inputs are wired to task outputs; a Spider task "
                    "reads either only job inputs or only outputs of earlier tasks, so produce "
                    "this value with an input task and wire its output here"
                )
            produced = self._tasks[output.task_index].spec.outputs[output.position]
            if produced != spec.inputs[position]:
                raise JobDefinitionError(
                    f"{where}: input {name!r} (position {position}) is declared "
                    f"{describe_data_type(spec.inputs[position])} but output {output.position} of task "
                    f"{output.task_index} ({output.task_name!r}) is {describe_data_type(produced)}; the two ends "
                    "of an edge must have the same type"
                )
            sources.append(InputSource(output.task_index, output.position))
        return tuple(sources)

    @staticmethod
    def _encode_values(where: str, spec: TaskSpec, values: Sequence[Any]) -> list[bytes]:
        payloads = []
        for position, value in enumerate(values):
            label = f"{where}, input {spec.input_names[position]!r} (position {position})"
            try:
                codec = value_codec(spec.input_annotations[position])
                payloads.append(codec.encode(value, label))
            except TdlSerializationError as exc:
                raise JobDefinitionError(str(exc)) from None
        return payloads

    @staticmethod
    def _count_message(where: str, spec: TaskSpec, given: int) -> str:
        names = ", ".join(spec.input_names) or "none"
        if given < len(spec.inputs):
            missing = ", ".join(spec.input_names[given:])
            return (
                f"{where}: input(s) {missing} not given; it takes {len(spec.inputs)} "
                f"input(s) ({names}); pass a value or a task output for each"
            )
        return f"{where}: {given} arguments given, but it takes {len(spec.inputs)} ({names})"

    @staticmethod
    def _termination(
        kind: str, task: TaskLike, policy: ExecutionPolicy | None
    ) -> TerminationTaskDescriptor:
        spec = spec_of(task)
        if spec.inputs or spec.outputs:
            raise JobDefinitionError(
                f"{kind} task {spec.name!r} takes {len(spec.inputs)} input(s) and returns "
                f"{len(spec.outputs)} output(s); a {kind} task takes only ctx: TaskContext "
                "and returns None"
            )
        try:
            return TerminationTaskDescriptor(spec.tdl_context, policy)
        except TaskGraphError as exc:
            raise JobDefinitionError(f"{kind} task {spec.name!r}: {exc}") from None
