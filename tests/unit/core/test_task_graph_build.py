"""Building a ``TaskGraph``: every structural rule of Spider's job model, enforced on insert."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings

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
)
from spider.core.errors import TaskGraphError
from spider.core.task_graph import (
    InputSource,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
)

from .core_strategies import task_graphs

INT32 = DataType(IntType(IntWidth.INT32))
INT64 = DataType(IntType())
FLOAT32 = DataType(FloatType(FloatWidth.FLOAT32))
FLOAT64 = DataType(FloatType())
BOOL = DataType(BoolType())
BYTES = DataType(BytesType())
LIST_INT32 = DataType(ListType(IntType(IntWidth.INT32)))
LIST_BYTES = DataType(ListType(BytesType()))
MAP = DataType(MapType(IntType(IntWidth.INT32), FloatType()))
RESULT = DataType(StructType("Result"))


def task(
    name: str,
    inputs: list[DataType],
    outputs: list[DataType],
    sources: list[tuple[int, int]] | None = None,
) -> TaskDescriptor:
    return TaskDescriptor(
        TdlContext("test_pkg", name),
        inputs,
        outputs,
        input_sources=None if sources is None else [InputSource(*pair) for pair in sources],
    )


def upstream_graph() -> TaskGraph:
    """The graph of Spider's `test_task_graph_construction`: fan-in, fan-out, reuse, empties."""
    graph = TaskGraph()
    for descriptor in [
        task("fn_1", [INT32, FLOAT64], [INT64, BOOL]),
        task("fn_2", [BYTES], [LIST_INT32, BYTES]),
        task("fn_3", [INT64], [MAP, RESULT], [(0, 0)]),
        task("fn_4", [MAP, BOOL], [INT32], [(2, 0), (0, 1)]),
        task("fn_5", [MAP, LIST_INT32], [FLOAT32, BYTES], [(2, 0), (1, 0)]),
        task("fn_6", [INT32], [BOOL, LIST_BYTES], [(3, 0)]),
        task(
            "fn_7", [LIST_BYTES, LIST_BYTES, BOOL, BYTES], [INT64], [(5, 1), (5, 1), (5, 0), (4, 1)]
        ),
        task("fn_8", [LIST_BYTES], [FLOAT64], [(5, 1)]),
        task("fn_9", [BYTES, LIST_INT32], [INT32], [(1, 1), (1, 0)]),
        task("fn_10", [], []),
    ]:
        graph.insert_task(descriptor)
    return graph


def test_indices_follow_insertion_order() -> None:
    graph = TaskGraph()
    assert graph.insert_task(task("a", [INT64], [INT64])) == 0
    assert graph.insert_task(task("b", [INT64], [INT64], [(0, 0)])) == 1
    assert graph.insert_task(task("c", [], [])) == 2
    assert len(graph) == 3
    assert [descriptor.tdl_context.task_func for descriptor in graph.tasks] == ["a", "b", "c"]


def test_parents_and_children_of_the_upstream_graph() -> None:
    graph = upstream_graph()
    assert [graph.parents(index) for index in range(10)] == [
        (), (), (0,), (0, 2), (1, 2), (3,), (4, 5), (5,), (1,), (),
    ]  # fmt: skip
    assert [graph.children(index) for index in range(10)] == [
        (2, 3), (4, 8), (3, 4), (5,), (6,), (6, 7), (), (), (), (),
    ]  # fmt: skip
    assert [graph.is_input_task(index) for index in range(10)] == [
        True, True, False, False, False, False, False, False, False, True,
    ]  # fmt: skip
    assert [graph.is_output_task(index) for index in range(10)] == [
        False, False, False, False, False, False, True, True, True, True,
    ]  # fmt: skip


def test_graph_inputs_are_the_input_tasks_inputs_in_order() -> None:
    graph = upstream_graph()
    assert graph.graph_inputs() == (InputSource(0, 0), InputSource(0, 1), InputSource(1, 0))
    assert graph.graph_input_types() == (INT32, FLOAT64, BYTES)
    assert graph.num_graph_inputs == 3


def test_graph_outputs_are_the_outputs_of_tasks_without_children() -> None:
    graph = upstream_graph()
    # Task 2's second and task 4's first output dangle, but their tasks have children: dropped.
    assert graph.graph_outputs() == (InputSource(6, 0), InputSource(7, 0), InputSource(8, 0))
    assert graph.graph_output_types() == (INT64, FLOAT64, INT32)
    assert graph.num_graph_outputs == 3


def test_the_dataflow_lists_every_reader_of_an_output() -> None:
    graph = upstream_graph()
    assert graph.consumers(5, 1) == (InputSource(6, 0), InputSource(6, 1), InputSource(7, 0))
    assert graph.consumers(2, 0) == (InputSource(3, 0), InputSource(4, 0))
    assert graph.consumers(2, 1) == ()
    assert graph.consumers(6, 0) == ()
    with pytest.raises(IndexError):
        graph.consumers(9, 0)
    with pytest.raises(IndexError):
        graph.parents(10)


def test_a_zero_input_task_is_an_input_task() -> None:
    graph = TaskGraph()
    graph.insert_task(task("source", [], [INT64]))
    assert graph.is_input_task(0)
    assert graph.num_graph_inputs == 0
    assert graph.graph_output_types() == (INT64,)


def test_an_output_task_may_have_no_outputs() -> None:
    graph = TaskGraph()
    graph.insert_task(task("a", [INT64], [INT64]))
    graph.insert_task(task("sink", [INT64], [], [(0, 0)]))
    assert graph.num_graph_outputs == 0
    assert graph.children(0) == (1,)


def test_reading_the_same_parent_twice_counts_it_once() -> None:
    graph = TaskGraph()
    graph.insert_task(task("a", [], [INT64, INT64]))
    graph.insert_task(task("b", [INT64, INT64, INT64], [], [(0, 1), (0, 0), (0, 1)]))
    assert graph.parents(1) == (0,)
    assert graph.children(0) == (1,)


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        (
            task("x", [], [], []),
            "task 2: it has no inputs, so it must be an input task",
        ),
        (
            task("x", [INT64, INT64], [], [(0, 0)]),
            "task 2: 2 inputs but 1 input source; give one source per input",
        ),
        (
            task("x", [INT64], [], [(0, 0), (1, 0)]),
            "task 2: 1 input but 2 input sources",
        ),
        (
            task("x", [INT64], [], [(2, 0)]),
            r"task 2: input 0 reads task 2, which is not an earlier task \(tasks 0..1 exist\)",
        ),
        (
            task("x", [INT64], [], [(7, 0)]),
            "task 2: input 0 reads task 7, which is not an earlier task",
        ),
        (
            task("x", [INT64], [], [(-1, 0)]),
            "reads task -1, which is not an earlier task",
        ),
        (
            task("x", [BOOL], [], [(0, 2)]),
            "task 2: input 0 reads output 2 of task 0, which has 2 outputs",
        ),
        (
            task("x", [INT64], [], [(0, -1)]),
            "reads output -1 of task 0",
        ),
        (
            task("x", [INT64, FLOAT64], [], [(0, 0), (1, 0)]),
            r"task 2: input 1 is declared Value\(Float64\) but output 0 of task 1 is "
            r"Value\(Int64\); the two ends of an edge must have the same type",
        ),
        (
            task("x", [DataType(IntType(IntWidth.INT32))], [], [(0, 0)]),
            r"declared Value\(Int32\) but output 0 of task 0 is Value\(Int64\)",
        ),
        (
            task("x", [DataType(IntType(), shared=True)], [], [(0, 0)]),
            r"declared SharedValue\(Int64\)",
        ),
    ],
)
def test_rule_violations_are_rejected_and_leave_the_graph_unchanged(
    descriptor: TaskDescriptor, message: str
) -> None:
    graph = TaskGraph()
    graph.insert_task(task("a", [], [INT64, BOOL]))
    graph.insert_task(task("b", [INT64], [INT64], [(0, 0)]))
    with pytest.raises(TaskGraphError, match=message):
        graph.insert_task(descriptor)
    assert len(graph) == 2
    assert graph.children(0) == (1,)
    assert graph.consumers(0, 0) == (InputSource(1, 0),)
    assert graph.insert_task(task("c", [INT64], [], [(1, 0)])) == 2


def test_a_bool_is_not_an_index() -> None:
    graph = TaskGraph()
    graph.insert_task(task("a", [], [INT64, INT64]))
    with pytest.raises(TaskGraphError, match="reads task True"):
        graph.insert_task(
            TaskDescriptor(TdlContext("p", "x"), [INT64], [], input_sources=[InputSource(True, 0)])
        )


def test_a_task_cannot_mix_graph_inputs_and_parent_outputs() -> None:
    graph = TaskGraph()
    graph.insert_task(task("a", [], [INT64]))
    mixed = TaskDescriptor(
        TdlContext("p", "x"),
        [INT64, INT64],
        [],
        input_sources=[InputSource(0, 0), None],  # type: ignore[list-item]
    )
    with pytest.raises(TaskGraphError, match="cannot mix graph inputs with parent outputs"):
        graph.insert_task(mixed)


def test_malformed_types_are_rejected_with_the_place() -> None:
    graph = TaskGraph()
    with pytest.raises(TaskGraphError, match="task 0: output 1: expected a DataType, got str"):
        graph.insert_task(task("a", [], [INT64, "Int64"]))  # type: ignore[list-item]
    deep = BoolType()
    for _ in range(10_000):
        deep = ListType(deep)  # type: ignore[assignment]
    with pytest.raises(TaskGraphError, match="task 0: input 0: type descriptor nests more than"):
        graph.insert_task(task("a", [DataType(deep)], []))
    assert len(graph) == 0


def test_insert_task_takes_only_descriptors() -> None:
    with pytest.raises(TaskGraphError, match="takes a TaskDescriptor, got dict"):
        TaskGraph().insert_task({"inputs": []})  # type: ignore[arg-type]
    with pytest.raises(TaskGraphError, match="task 0: tdl_context must be a TdlContext, got str"):
        TaskGraph().insert_task(TaskDescriptor("p::f", [], []))  # type: ignore[arg-type]


def test_termination_tasks_must_be_descriptors() -> None:
    with pytest.raises(TaskGraphError, match="commit_task must be a TerminationTaskDescriptor"):
        TaskGraph(commit_task=task("a", [], []))  # type: ignore[arg-type]


def test_tdl_names_must_be_utf8_text() -> None:
    with pytest.raises(TaskGraphError, match="package must be a string"):
        TdlContext(b"pkg", "f")  # type: ignore[arg-type]
    with pytest.raises(TaskGraphError, match="task_func must be a string encodable as UTF-8"):
        TdlContext("pkg", "\ud800")


def test_a_job_needs_at_least_one_task() -> None:
    graph = TaskGraph()
    with pytest.raises(TaskGraphError, match="a job needs at least one task"):
        graph.check_submittable()
    graph.insert_task(task("a", [], []))
    graph.check_submittable()


@settings(deadline=None)
@given(task_graphs())
def test_derived_structure_matches_a_model(graph: TaskGraph) -> None:
    tasks = graph.tasks
    parents = [
        sorted({source.task_idx for source in descriptor.input_sources or ()})
        for descriptor in tasks
    ]
    children = [
        [child for child in range(len(tasks)) if index in parents[child]]
        for index in range(len(tasks))
    ]
    for index in range(len(tasks)):
        assert list(graph.parents(index)) == parents[index]
        assert list(graph.children(index)) == children[index]
        for position in range(len(tasks[index].outputs)):
            assert graph.consumers(index, position) == tuple(
                InputSource(reader, slot)
                for reader, descriptor in enumerate(tasks)
                for slot, source in enumerate(descriptor.input_sources or ())
                if source == InputSource(index, position)
            )
    assert graph.graph_inputs() == tuple(
        InputSource(index, position)
        for index, descriptor in enumerate(tasks)
        if descriptor.input_sources is None
        for position in range(len(descriptor.inputs))
    )
    assert graph.graph_outputs() == tuple(
        InputSource(index, position)
        for index, descriptor in enumerate(tasks)
        if not children[index]
        for position in range(len(descriptor.outputs))
    )
    assert len(graph.graph_input_types()) == graph.num_graph_inputs
    assert len(graph.graph_output_types()) == graph.num_graph_outputs


def test_a_layered_network_builds_with_every_output_consumed() -> None:
    # A small copy of upstream's e2e nn workload: 25 distinct previous outputs per neuron.
    layers, width, fan_in = 3, 60, 25
    rng = random.Random(7)
    graph = TaskGraph()
    previous: list[int] = []
    for layer in range(layers):
        current = []
        deck: list[int] = []
        for _neuron in range(width):
            if layer == 0:
                descriptor = task("neuron::dense_relu", [FLOAT64] * fan_in, [FLOAT64])
            else:
                if len(deck) < fan_in:
                    deck = previous[:]
                    rng.shuffle(deck)
                picks = [(deck.pop(), 0) for _ in range(fan_in)]
                descriptor = task("neuron::dense_relu", [FLOAT64] * fan_in, [FLOAT64], picks)
            current.append(graph.insert_task(descriptor))
        previous = current
    assert graph.num_graph_inputs == width * fan_in
    assert graph.graph_outputs() == tuple(InputSource(index, 0) for index in previous)
    assert all(graph.children(index) for index in range(width * (layers - 1)))


def test_mismatch_messages_spell_out_composite_types() -> None:
    declared = DataType(MapType(IntType(IntWidth.INT16), ListType(StructType("Row"))))
    produced = DataType(MapType(BytesType(), ListType(BoolType())), shared=True)
    graph = TaskGraph()
    graph.insert_task(task("a", [], [produced]))
    with pytest.raises(
        TaskGraphError,
        match=r"declared Value\(Map<Int16, List<Struct\(Row\)>>\) but output 0 of task 0 is "
        r"SharedValue\(Map<Bytes, List<Boolean>>\)",
    ):
        graph.insert_task(task("b", [declared], [], [(0, 0)]))


def test_an_execution_policy_must_be_one() -> None:
    with pytest.raises(TaskGraphError, match="execution_policy must be an ExecutionPolicy or None"):
        TaskDescriptor(TdlContext("p", "f"), [], [], "fast")  # type: ignore[arg-type]
