"""The task-graph model and its wire forms: JSON, zstd-compressed JSON, and compressed job inputs.

A job is a DAG of typed tasks, built with ``TaskGraph.insert_task`` in topological order (see
``docs/task-graph.md`` for the rules and the JSON format). On the wire,
``RegisterJob.compressed_serialized_task_graph`` is ``encode_task_graph(graph)`` and
``RegisterJob.compressed_serialized_inputs`` is ``encode_job_inputs(payloads)``.
"""

from __future__ import annotations

import attrs

from spider.core._graph_descriptors import (
    InputSource,
    TaskDescriptor,
    TdlContext,
    TerminationTaskDescriptor,
)
from spider.core._graph_job_inputs import decode_job_inputs, encode_job_inputs
from spider.core._graph_json_reader import data_type_from_json, task_graph_from_json
from spider.core._graph_json_writer import data_type_to_json, task_graph_to_json
from spider.core._graph_model import TaskGraph
from spider.core._graph_policy import (
    DEFAULT_EXECUTION_POLICY,
    DEFAULT_FIRST_RETRY_DELAY_MS,
    DEFAULT_MAX_RETRY_DELAY_MS,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    ExecutionPolicy,
    RetryDelay,
    TimeoutPolicy,
)
from spider.core._graph_schema_version import (
    COMPATIBLE_SCHEMA_VERSIONS,
    TASK_GRAPH_SCHEMA_VERSION,
)
from spider.core._graph_types import MAX_TYPE_DEPTH
from spider.core.compression import compress, decompress
from spider.core.errors import CompressionError, TaskGraphError

__all__ = [
    "COMPATIBLE_SCHEMA_VERSIONS",
    "DEFAULT_EXECUTION_POLICY",
    "DEFAULT_FIRST_RETRY_DELAY_MS",
    "DEFAULT_MAX_RETRY_DELAY_MS",
    "DEFAULT_TASK_GRAPH_LIMIT",
    "MAX_TIMEOUT_MS",
    "MAX_TYPE_DEPTH",
    "MIN_TIMEOUT_MS",
    "TASK_GRAPH_SCHEMA_VERSION",
    "ExecutionPolicy",
    "InputSource",
    "JobSubmission",
    "RetryDelay",
    "TaskDescriptor",
    "TaskGraph",
    "TdlContext",
    "TerminationTaskDescriptor",
    "TimeoutPolicy",
    "data_type_from_json",
    "data_type_to_json",
    "decode_job_inputs",
    "decode_job_submission",
    "decode_task_graph",
    "encode_job_inputs",
    "encode_task_graph",
    "task_graph_from_json",
    "task_graph_to_json",
]

# The JSON of a 10-layer, 1000-neuron, 25-input network is about 20 MB; this leaves room for
# graphs ten times larger while keeping a zstd bomb from exhausting memory.
DEFAULT_TASK_GRAPH_LIMIT = 256 << 20


def encode_task_graph(graph: TaskGraph) -> bytes:
    """``RegisterJob.compressed_serialized_task_graph``: zstd of the compact JSON."""
    return compress(task_graph_to_json(graph).encode("utf-8"))


def decode_task_graph(
    data: bytes, *, limit: int = DEFAULT_TASK_GRAPH_LIMIT, setting: str | None = None
) -> TaskGraph:
    """Decompress (at most ``limit`` bytes of JSON), parse and validate a task graph.

    Every defect raises ``TaskGraphError``.
    """
    try:
        text = decompress(data, limit=limit, setting=setting)
    except CompressionError as exc:
        raise TaskGraphError(f"invalid task graph: {exc}") from exc
    return task_graph_from_json(text)


@attrs.frozen
class JobSubmission:
    """A job as ``RegisterJob`` carries it, decoded and checked against each other."""

    task_graph: TaskGraph
    inputs: tuple[bytes, ...]


def decode_job_submission(
    compressed_task_graph: bytes,
    compressed_inputs: bytes,
    *,
    limit: int = DEFAULT_TASK_GRAPH_LIMIT,
    inputs_limit: int | None = None,
    settings: tuple[str, str] | None = None,
) -> JobSubmission:
    """Decode a ``RegisterJob`` request's graph and inputs as storage validates them.

    The graph must be valid and have at least one task, and there must be exactly one input
    payload per graph input. Raises a ``CodecError`` subclass otherwise. The decompressed graph
    may be ``limit`` bytes, the inputs ``inputs_limit`` (default: ``limit``); ``settings`` names
    the configuration keys of the two limits for the refusal.
    """
    graph_setting, inputs_setting = settings or (None, None)
    graph = decode_task_graph(compressed_task_graph, limit=limit, setting=graph_setting)
    graph.check_submittable()
    inputs = decode_job_inputs(
        compressed_inputs,
        expected=graph.num_graph_inputs,
        limit=limit if inputs_limit is None else inputs_limit,
        setting=inputs_setting,
    )
    return JobSubmission(graph, tuple(inputs))
