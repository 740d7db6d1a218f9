"""``TaskGraph``: a job's DAG of typed tasks, built in topological order and checked as it grows.

Every rule of Spider's graph is enforced by ``insert_task``, which is also what the JSON decoder
replays, so a graph that exists is a valid graph:

* a task is inserted after every task it reads from (insertion order is a topological order,
  and indices are positions in it);
* an input task (``input_sources=None``) takes only graph inputs; a task with no inputs must be
  an input task; any other task names one source per input, each an existing output of an
  already inserted task, of exactly the input's type (fan-out is allowed);
* the parents of a task are the distinct tasks it reads from, the children the reverse;
* the graph inputs are the inputs of the input tasks, in index order; the graph outputs are
  the outputs of the tasks without children, in index order.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from spider.core._graph_descriptors import (
    InputSource,
    TaskDescriptor,
    TdlContext,
    TerminationTaskDescriptor,
)
from spider.core._graph_types import check_data_type, describe_data_type
from spider.core.data_types import DataType
from spider.core.errors import TaskGraphError


def _check_termination(
    instance: TaskGraph,
    attribute: attrs.Attribute[TerminationTaskDescriptor | None],
    value: TerminationTaskDescriptor | None,
) -> None:
    if value is not None and not isinstance(value, TerminationTaskDescriptor):
        raise TaskGraphError(
            f"{attribute.name} must be a TerminationTaskDescriptor or None, "
            f"got {type(value).__name__}"
        )


@attrs.define(eq=False)
class TaskGraph:
    """A job's tasks and dataflow; grow it with ``insert_task`` in topological order.

    Synopsis::

        graph = TaskGraph(commit_task=TerminationTaskDescriptor(TdlContext("pkg", "commit")))
        a = graph.insert_task(TaskDescriptor(TdlContext("pkg", "load"), [INT], [INT]))
        graph.insert_task(
            TaskDescriptor(TdlContext("pkg", "double"), [INT], [INT], input_sources=[InputSource(a, 0)])
        )
    """

    commit_task: TerminationTaskDescriptor | None = attrs.field(
        default=None, validator=_check_termination
    )
    cleanup_task: TerminationTaskDescriptor | None = attrs.field(
        default=None, validator=_check_termination
    )
    _tasks: list[TaskDescriptor] = attrs.field(init=False, factory=list)
    _parents: list[tuple[int, ...]] = attrs.field(init=False, factory=list)
    _children: list[list[int]] = attrs.field(init=False, factory=list)
    # _consumers[task][output position] lists the (task, input position) pairs it feeds. Plain
    # tuples here and in _graph_inputs: there is one per edge, and attrs instances cost more.
    _consumers: list[tuple[list[tuple[int, int]], ...]] = attrs.field(init=False, factory=list)
    _graph_inputs: list[tuple[int, int]] = attrs.field(init=False, factory=list)
    _graph_input_types: list[DataType] = attrs.field(init=False, factory=list)
    # Descriptors already validated, by identity: graphs reuse a handful of type objects, so
    # this keeps validation (and the decoder's interning) from costing per edge.
    _checked_types: dict[int, DataType] = attrs.field(init=False, factory=dict)

    def insert_task(self, descriptor: TaskDescriptor) -> int:
        """Add a task after all the tasks it reads from and return its index.

        Raises ``TaskGraphError`` naming the task, the input and what was expected if the task
        breaks a graph rule; the graph is unchanged then.
        """
        if not isinstance(descriptor, TaskDescriptor):
            raise TaskGraphError(
                f"insert_task takes a TaskDescriptor, got {type(descriptor).__name__}"
            )
        index = len(self._tasks)
        if not isinstance(descriptor.tdl_context, TdlContext):
            raise TaskGraphError(
                f"task {index}: tdl_context must be a TdlContext, "
                f"got {type(descriptor.tdl_context).__name__}"
            )
        checked = self._checked_types
        for kind, types in (("input", descriptor.inputs), ("output", descriptor.outputs)):
            for position, data_type in enumerate(types):
                if id(data_type) not in checked:
                    self._check_type(data_type, index, kind, position)
        sources = descriptor.input_sources
        parents: tuple[int, ...] = ()
        if sources is not None:
            self._check_sources(index, descriptor.inputs, sources)
            parents = tuple(sorted({source.task_idx for source in sources}))
        # Validation is over: from here on nothing raises, so a rejected task leaves no trace.
        self._tasks.append(descriptor)
        self._parents.append(parents)
        self._children.append([])
        self._consumers.append(tuple([] for _ in descriptor.outputs))
        if sources is None:
            self._graph_inputs.extend(
                (index, position) for position in range(len(descriptor.inputs))
            )
            self._graph_input_types.extend(descriptor.inputs)
        else:
            consumers = self._consumers
            for position, source in enumerate(sources):
                consumers[source.task_idx][source.position].append((index, position))
            for parent in parents:
                self._children[parent].append(index)
        return index

    def _check_type(self, data_type: DataType, index: int, kind: str, position: int) -> None:
        try:
            check_data_type(data_type)
        except TaskGraphError as exc:
            raise TaskGraphError(f"task {index}: {kind} {position}: {exc}") from None
        self._checked_types[id(data_type)] = data_type

    def _check_sources(
        self, index: int, inputs: Sequence[DataType], sources: Sequence[InputSource]
    ) -> None:
        if not inputs:
            raise TaskGraphError(
                f"task {index}: it has no inputs, so it must be an input task: give no input "
                "sources (None), not an empty list"
            )
        if len(sources) != len(inputs):
            raise TaskGraphError(
                f"task {index}: {_count(len(inputs), 'input')} but "
                f"{_count(len(sources), 'input source')}; give one source per input, or no "
                "sources (None) for an input task"
            )
        tasks = self._tasks
        for position, source in enumerate(sources):
            # `type(...) is` rather than isinstance: this loop runs once per edge, and it also
            # keeps bools out of indices.
            if type(source) is not InputSource:
                raise TaskGraphError(
                    f"task {index}: input {position}: a source must be an InputSource, got "
                    f"{type(source).__name__}; a task cannot mix graph inputs with parent outputs"
                )
            producer, output = source.task_idx, source.position
            if type(producer) is not int or not 0 <= producer < index:
                earlier = f"tasks 0..{index - 1} exist" if index else "no task exists yet"
                raise TaskGraphError(
                    f"task {index}: input {position} reads task {producer!r}, which is not "
                    f"an earlier task ({earlier}); insert every task after the tasks it "
                    "reads from"
                )
            outputs = tasks[producer].outputs
            if type(output) is not int or not 0 <= output < len(outputs):
                raise TaskGraphError(
                    f"task {index}: input {position} reads output {output!r} of task {producer}, "
                    f"which has {_count(len(outputs), 'output')}"
                )
            expected, actual = inputs[position], outputs[output]
            if expected is not actual and expected != actual:
                raise TaskGraphError(
                    f"task {index}: input {position} is declared {describe_data_type(expected)} "
                    f"but output {output} of task {producer} is {describe_data_type(actual)}; "
                    "the two ends of an edge must have the same type"
                )

    @property
    def tasks(self) -> Sequence[TaskDescriptor]:
        """The task descriptors in index (insertion) order."""
        return tuple(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def task(self, index: int) -> TaskDescriptor:
        """The descriptor of task ``index``."""
        return self._tasks[self._index(index)]

    def parents(self, index: int) -> tuple[int, ...]:
        """The distinct tasks whose outputs task ``index`` reads, ascending."""
        return self._parents[self._index(index)]

    def children(self, index: int) -> tuple[int, ...]:
        """The distinct tasks that read an output of task ``index``, ascending."""
        return tuple(self._children[self._index(index)])

    def is_input_task(self, index: int) -> bool:
        """True if task ``index`` has no parents: it reads only graph inputs."""
        return not self._parents[self._index(index)]

    def is_output_task(self, index: int) -> bool:
        """True if task ``index`` has no children: its outputs are graph outputs."""
        return not self._children[self._index(index)]

    def consumers(self, task_idx: int, position: int) -> tuple[InputSource, ...]:
        """The (task, input position) pairs that output ``position`` of ``task_idx`` feeds."""
        outputs = self._consumers[self._index(task_idx)]
        if not _is_index(position) or position >= len(outputs):
            raise IndexError(f"task {task_idx} has {len(outputs)} outputs, not {position!r}")
        return tuple(InputSource(task, input_) for task, input_ in outputs[position])

    def graph_inputs(self) -> tuple[InputSource, ...]:
        """The (task, input position) each job input goes to, in job-input order."""
        return tuple(InputSource(task, position) for task, position in self._graph_inputs)

    def graph_input_types(self) -> tuple[DataType, ...]:
        """The type of each job input, in job-input order."""
        return tuple(self._graph_input_types)

    def graph_outputs(self) -> tuple[InputSource, ...]:
        """The (task, output position) of each job output, in job-output order.

        Outputs of a task with children are never job outputs, even if no child reads them.
        """
        return tuple(
            InputSource(index, position)
            for index, descriptor in enumerate(self._tasks)
            if not self._children[index]
            for position in range(len(descriptor.outputs))
        )

    def graph_output_types(self) -> tuple[DataType, ...]:
        """The type of each job output, in job-output order."""
        return tuple(
            data_type
            for index, descriptor in enumerate(self._tasks)
            if not self._children[index]
            for data_type in descriptor.outputs
        )

    @property
    def num_graph_inputs(self) -> int:
        """How many job inputs the graph takes (the job-input frame's payload count)."""
        return len(self._graph_inputs)

    @property
    def num_graph_outputs(self) -> int:
        """How many job outputs the graph produces."""
        return sum(
            len(descriptor.outputs)
            for index, descriptor in enumerate(self._tasks)
            if not self._children[index]
        )

    def check_submittable(self) -> None:
        """Raise ``TaskGraphError`` unless the graph can be a job: it needs at least one task."""
        if not self._tasks:
            raise TaskGraphError("a job needs at least one task, but the task graph is empty")

    def same_as(self, other: TaskGraph) -> bool:
        """True if both graphs have equal termination tasks and equal task descriptors."""
        return (
            self.commit_task == other.commit_task
            and self.cleanup_task == other.cleanup_task
            and self._tasks == other._tasks
        )

    def _index(self, index: int) -> int:
        if not _is_index(index) or index >= len(self._tasks):
            raise IndexError(f"no task {index!r}: the graph has {len(self._tasks)} tasks")
        return index


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
