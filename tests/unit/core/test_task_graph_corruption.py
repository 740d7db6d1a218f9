"""Corrupt task graphs, at every layer, raise ``TaskGraphError`` and nothing else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core.errors import TaskGraphError
from spider.core.task_graph import (
    TaskGraph,
    decode_task_graph,
    encode_task_graph,
    task_graph_from_json,
    task_graph_to_json,
)

from .core_strategies import json_values, task_graphs


def decodes_cleanly_or_is_rejected(data: bytes | str) -> TaskGraph | None:
    """Decode; a rejection must be a ``TaskGraphError``, and a success must re-encode stably."""
    try:
        graph = decode_task_graph(data) if isinstance(data, bytes) else task_graph_from_json(data)
    except TaskGraphError:
        return None
    text = task_graph_to_json(graph)
    assert task_graph_to_json(task_graph_from_json(text)) == text
    return graph


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_flipped_bytes_of_the_compressed_graph(graph: TaskGraph, data: st.DataObject) -> None:
    encoded = bytearray(encode_task_graph(graph))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] ^= data.draw(st.integers(1, 255))
    decodes_cleanly_or_is_rejected(bytes(encoded))


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_truncated_compressed_graphs_are_rejected(graph: TaskGraph, data: st.DataObject) -> None:
    encoded = encode_task_graph(graph)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(TaskGraphError):
        decode_task_graph(encoded[:cut])


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_truncated_json_is_rejected(graph: TaskGraph, data: st.DataObject) -> None:
    text = task_graph_to_json(graph)
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(TaskGraphError):
        task_graph_from_json(text[:cut])


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_edited_json_text(graph: TaskGraph, data: st.DataObject) -> None:
    text = task_graph_to_json(graph)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(text)))
        removed = data.draw(st.integers(0, 2))
        inserted = data.draw(
            st.text(alphabet='{}[]":,0123456789-.eE tnulrf\\\x00\ud800é', max_size=3)
        )
        text = text[:position] + inserted + text[position + removed :]
    decodes_cleanly_or_is_rejected(text)


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_edited_utf8_bytes(graph: TaskGraph, data: st.DataObject) -> None:
    raw = bytearray(task_graph_to_json(graph).encode())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(TaskGraphError):
        task_graph_from_json(bytes(raw))


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths.extend(json_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths.extend(json_paths(item, (*prefix, index)))
    return paths


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@settings(max_examples=200, deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_any_value_anywhere_in_a_valid_document(graph: TaskGraph, data: st.DataObject) -> None:
    document = json.loads(task_graph_to_json(graph))
    path = data.draw(st.sampled_from(json_paths(document)))
    mutated = replaced(document, path, data.draw(json_values))
    decodes_cleanly_or_is_rejected(json.dumps(mutated))


@settings(deadline=None)
@given(task_graphs(max_tasks=5), st.data())
def test_a_deleted_key_anywhere_in_a_valid_document(graph: TaskGraph, data: st.DataObject) -> None:
    document = json.loads(task_graph_to_json(graph))
    objects = [path for path in json_paths(document) if path and isinstance(path[-1], str)]
    path = data.draw(st.sampled_from(objects))
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    mutated = replaced(document, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
    decodes_cleanly_or_is_rejected(json.dumps(mutated))


@settings(deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "schema_version": st.just("0.1.0") | json_values,
            "tasks": st.lists(json_values, max_size=3) | json_values,
            "commit_task": json_values,
            "cleanup_task": json_values,
        }
    )
)
def test_arbitrary_top_level_values(document: dict[str, Any]) -> None:
    decodes_cleanly_or_is_rejected(json.dumps(document))


@settings(deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_cleanly_or_is_rejected(data)


def test_a_graph_with_a_huge_number_of_sources_is_refused_cleanly() -> None:
    sources = ",".join('{"task_idx":0,"position":0}' for _ in range(10_000))
    text = (
        '{"schema_version":"0.1.0","tasks":[{"tdl_context":{"package":"p","task_func":"f"},'
        '"inputs":[],"outputs":[{"Value":{"Bytes":{}}}],"input_sources":null},'
        '{"tdl_context":{"package":"p","task_func":"g"},"inputs":[{"Value":{"Bytes":{}}}],'
        f'"outputs":[],"input_sources":[{sources}]}}],"commit_task":null,"cleanup_task":null}}'
    )
    with pytest.raises(TaskGraphError, match="task 1: 1 input but 10000 input sources"):
        task_graph_from_json(text)
