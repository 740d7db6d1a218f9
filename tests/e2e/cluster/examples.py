"""The ``spider_examples`` TDL package imported into the test process, and job graphs of it.

The package is imported as the top-level module ``spider_examples`` (its TDL package name), so
its task functions can be called directly to compute what a job must output.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import attrs

from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.core.task_graph import (
    ExecutionPolicy,
    InputSource,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
)
from spider.core.task_id import TaskId
from spider.tdl import TaskContext, definition_of, value_codec
from tests.tdl_modules import import_as_top_level

from .cluster import EXAMPLES

PACKAGE = "spider_examples"


def import_examples() -> ModuleType:
    """The package, imported once per test session."""
    return import_as_top_level(EXAMPLES, PACKAGE)


EX = import_examples()

# What a direct call passes as the context: the journal is off in the test process.
LOCAL_CONTEXT = TaskContext(JobId(0), TaskId.index(0), TaskInstanceId(0), ResourceGroupId(0))


QUICK_RETRIES = RetryDelay(first_ms=50, max_ms=200)
"""Retries wait (so the cluster's retry timer is on the path) but briefly, to keep the suite fast."""


def descriptor(
    function: Callable[..., Any],
    sources: Sequence[tuple[int, int]] | None = None,
    *,
    retries: int = 0,
    timeouts: TimeoutPolicy | None = None,
) -> TaskDescriptor:
    """A graph node running ``function``, its inputs from ``sources`` (graph inputs if None)."""
    definition = definition_of(function)
    return TaskDescriptor(
        TdlContext(PACKAGE, definition.name),
        list(definition.signature.inputs),
        list(definition.signature.outputs),
        execution_policy=ExecutionPolicy(
            max_num_retry=retries,
            retry_delay=QUICK_RETRIES,
            timeout_policy=timeouts or TimeoutPolicy(),
        ),
        input_sources=None if sources is None else [InputSource(*pair) for pair in sources],
    )


def termination(function: Callable[..., Any]) -> TerminationTaskDescriptor:
    return TerminationTaskDescriptor(TdlContext(PACKAGE, definition_of(function).name))


def encode(annotation: Any, value: Any) -> bytes:
    """A msgpack payload, as the task's codecs write it."""
    payload: bytes = value_codec(annotation).encode(value)
    return payload


def decode(annotation: Any, payload: bytes) -> Any:
    return value_codec(annotation).decode(payload)


@attrs.frozen
class Job:
    """A graph, its job inputs (payloads) and how to decode and check its outputs."""

    graph: TaskGraph
    inputs: list[bytes]
    output_type: Any
    expected: list[Any]


def wordcount_job(text: bytes) -> Job:
    """``split`` → ``CHUNKS`` x ``count`` → a tree of ``merge``s; one dict out."""
    graph = TaskGraph()
    split = graph.insert_task(descriptor(EX.split))
    counts = [graph.insert_task(descriptor(EX.count, [(split, k)])) for k in range(EX.CHUNKS)]
    while len(counts) > 1:
        counts = [
            graph.insert_task(descriptor(EX.merge, [(counts[k], 0), (counts[k + 1], 0)]))
            for k in range(0, len(counts), 2)
        ]
    chunks = EX.split(LOCAL_CONTEXT, text)
    partial = [EX.count(LOCAL_CONTEXT, chunk) for chunk in chunks]
    while len(partial) > 1:
        partial = [
            EX.merge(LOCAL_CONTEXT, partial[k], partial[k + 1]) for k in range(0, len(partial), 2)
        ]
    return Job(graph, [encode(bytes, text)], dict[bytes, int], partial)


def nn_job(layers: int, width: int, seed: int, timeouts: TimeoutPolicy | None = None) -> Job:
    """Upstream's e2e ``nn`` workload, smaller: ``layers`` x ``width`` neurons (each with
    ``timeouts``, if given).

    Layer 0 neurons read ``FAN_IN`` graph inputs each; every later neuron reads ``FAN_IN``
    distinct outputs of the previous layer, dealt from a deck reshuffled whenever it runs out,
    so every output is read. The job outputs are the last layer's, in neuron order.
    """
    fan_in: int = EX.FAN_IN
    assert width >= fan_in
    rng = random.Random(seed)
    inputs = [rng.uniform(-1.0, 1.0) for _ in range(width * fan_in)]
    graph = TaskGraph()
    values = [
        EX.neuron_task_for_layer(0)(LOCAL_CONTEXT, *inputs[n * fan_in : (n + 1) * fan_in])
        for n in range(width)
    ]
    previous = [
        graph.insert_task(descriptor(EX.neuron_task_for_layer(0), timeouts=timeouts))
        for _ in range(width)
    ]
    for layer in range(1, layers):
        neuron = EX.neuron_task_for_layer(layer)
        deck: list[int] = []
        current: list[int] = []
        next_values: list[float] = []
        for _ in range(width):
            if len(deck) < fan_in:
                deck = list(range(width))
                rng.shuffle(deck)
            picks, deck = deck[:fan_in], deck[fan_in:]
            sources = [(previous[p], 0) for p in picks]
            current.append(graph.insert_task(descriptor(neuron, sources, timeouts=timeouts)))
            next_values.append(neuron(LOCAL_CONTEXT, *(values[p] for p in picks)))
        previous, values = current, next_values
    return Job(graph, [encode(float, x) for x in inputs], float, values)


def flaky_job(failures: list[int], retries: int | None = None) -> Job:
    """One ``flaky::increment`` per entry, failing that many times, allowed ``retries`` retries
    (by default as many as it fails); a commit task that writes the outputs."""
    graph = TaskGraph(commit_task=termination(EX.commit))
    inputs: list[bytes] = []
    for value, count in enumerate(failures):
        graph.insert_task(descriptor(EX.increment, retries=count if retries is None else retries))
        inputs += [encode(int, value * 10), encode(int, count)]
    expected = [value * 10 + 1 for value in range(len(failures))]
    return Job(graph, inputs, int, expected)


def waiting_job(milliseconds: int) -> Job:
    """One ``lifecycle::wait`` task and a cleanup task: a job to cancel while it runs."""
    graph = TaskGraph(cleanup_task=termination(EX.cleanup))
    graph.insert_task(descriptor(EX.wait))
    return Job(graph, [encode(int, milliseconds)], int, [milliseconds])
