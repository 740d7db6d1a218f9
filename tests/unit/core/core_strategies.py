"""Hypothesis strategies for the ``spider.core`` codecs: type descriptors, policies, graphs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from spider.core.data_types import (
    BoolType,
    BytesType,
    DataType,
    FloatType,
    FloatWidth,
    IntType,
    IntWidth,
    ListType,
    MapKeyType,
    MapType,
    StructType,
    ValueType,
)
from spider.core.ids import U32_MAX
from spider.core.task_graph import (
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    ExecutionPolicy,
    InputSource,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
)

# Any text JSON and UTF-8 can carry: everything but lone surrogates.
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)

int_types = st.sampled_from(list(IntWidth)).map(IntType)
float_types = st.sampled_from(list(FloatWidth)).map(FloatType)
map_keys: st.SearchStrategy[MapKeyType] = st.one_of(int_types, st.just(BytesType()))
leaf_values: st.SearchStrategy[ValueType] = st.one_of(
    int_types, float_types, st.just(BoolType()), st.just(BytesType()), names.map(StructType)
)
value_types: st.SearchStrategy[ValueType] = st.recursive(
    leaf_values,
    lambda inner: st.one_of(inner.map(ListType), st.builds(MapType, map_keys, inner)),
    max_leaves=5,
)
data_types = st.builds(DataType, value_types, st.booleans())


@st.composite
def timeout_policies(draw: st.DrawFn) -> TimeoutPolicy:
    soft = draw(st.integers(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS - 1))
    return TimeoutPolicy(soft, draw(st.integers(soft + 1, MAX_TIMEOUT_MS)))


@st.composite
def retry_delays(draw: st.DrawFn) -> RetryDelay:
    first = draw(st.integers(0, MAX_TIMEOUT_MS))
    return RetryDelay(first, draw(st.integers(first, MAX_TIMEOUT_MS)))


execution_policies = st.none() | st.builds(
    ExecutionPolicy,
    st.integers(0, U32_MAX),
    st.integers(1, U32_MAX),
    timeout_policies(),
    st.just(RetryDelay()) | retry_delays(),
)
tdl_contexts = st.builds(TdlContext, names, names)
termination_tasks = st.none() | st.builds(
    TerminationTaskDescriptor, tdl_contexts, execution_policies
)


@st.composite
def task_graphs(draw: st.DrawFn, *, max_tasks: int = 8) -> TaskGraph:
    """A valid DAG: each task reads graph inputs, or some outputs of earlier tasks."""
    graph = TaskGraph(draw(termination_tasks), draw(termination_tasks))
    # A few types per graph, so that edges are likely to find a matching output.
    palette = draw(st.lists(data_types, min_size=1, max_size=3))
    types = st.sampled_from(palette)
    available: list[tuple[InputSource, DataType]] = []
    for index in range(draw(st.integers(0, max_tasks))):
        outputs = draw(st.lists(types, max_size=3))
        reads_parents = draw(st.booleans()) if available else False
        if reads_parents:
            picks = draw(st.lists(st.sampled_from(available), min_size=1, max_size=4))
            inputs = [data_type for _source, data_type in picks]
            sources: list[InputSource] | None = [source for source, _type in picks]
        else:
            inputs = draw(st.lists(types, max_size=3))
            sources = None
        descriptor = TaskDescriptor(
            draw(tdl_contexts), inputs, outputs, draw(execution_policies), sources
        )
        assert graph.insert_task(descriptor) == index
        available.extend(
            (InputSource(index, position), data_type) for position, data_type in enumerate(outputs)
        )
    return graph


# Arbitrary JSON values, to splice into valid documents.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
