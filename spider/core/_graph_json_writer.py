"""Writing a task graph as Spider's JSON.

``{"schema_version": "0.1.0", "tasks": [...], "commit_task": ..., "cleanup_task": ...}`` in
that key order, compact, UTF-8, as serde_json writes it. A task's ``execution_policy`` is left
out when it is the default (and written in full otherwise); ``input_sources`` is always written,
``null`` for an input task.
"""

from __future__ import annotations

import json

from spider.core._graph_descriptors import TaskDescriptor, TdlContext, TerminationTaskDescriptor
from spider.core._graph_model import TaskGraph
from spider.core._graph_policy import DEFAULT_EXECUTION_POLICY, ExecutionPolicy, RetryDelay
from spider.core._graph_schema_version import TASK_GRAPH_SCHEMA_VERSION
from spider.core._graph_types import check_data_type, data_type_json
from spider.core.data_types import DataType


def data_type_to_json(data_type: DataType) -> str:
    """Spider's JSON text of one type descriptor, e.g. ``{"Value":{"Bytes":{}}}``."""
    return data_type_json(check_data_type(data_type))


def task_graph_to_json(graph: TaskGraph) -> str:
    """Spider's compact JSON text of ``graph``."""
    writer = _JsonWriter()
    parts = ['{"schema_version":"', TASK_GRAPH_SCHEMA_VERSION, '","tasks":[']
    for index, task in enumerate(graph.tasks):
        if index:
            parts.append(",")
        writer.task(task, parts)
    parts.append('],"commit_task":')
    parts.append(writer.termination(graph.commit_task))
    parts.append(',"cleanup_task":')
    parts.append(writer.termination(graph.cleanup_task))
    parts.append("}")
    return "".join(parts)


class _JsonWriter:
    """Caches the JSON of the strings and type objects a graph repeats on every task."""

    def __init__(self) -> None:
        self._types: dict[int, str] = {}
        self._strings: dict[str, str] = {}

    def task(self, task: TaskDescriptor, parts: list[str]) -> None:
        parts.append('{"tdl_context":')
        parts.append(self._tdl_context(task.tdl_context))
        if task.execution_policy != DEFAULT_EXECUTION_POLICY:
            parts.append(',"execution_policy":')
            parts.append(_policy_json(task.execution_policy))
        parts.append(',"inputs":[')
        parts.append(",".join([self._type(data_type) for data_type in task.inputs]))
        parts.append('],"outputs":[')
        parts.append(",".join([self._type(data_type) for data_type in task.outputs]))
        if task.input_sources is None:
            parts.append('],"input_sources":null}')
        else:
            parts.append('],"input_sources":[')
            parts.append(
                ",".join(
                    [
                        f'{{"task_idx":{source.task_idx},"position":{source.position}}}'
                        for source in task.input_sources
                    ]
                )
            )
            parts.append("]}")

    def termination(self, task: TerminationTaskDescriptor | None) -> str:
        if task is None:
            return "null"
        text = '{"tdl_context":' + self._tdl_context(task.tdl_context)
        if task.execution_policy != DEFAULT_EXECUTION_POLICY:
            text += ',"execution_policy":' + _policy_json(task.execution_policy)
        return text + "}"

    def _tdl_context(self, context: TdlContext) -> str:
        return (
            '{"package":'
            + self._string(context.package)
            + ',"task_func":'
            + self._string(context.task_func)
            + "}"
        )

    def _string(self, text: str) -> str:
        encoded = self._strings.get(text)
        if encoded is None:
            encoded = self._strings[text] = json.dumps(text, ensure_ascii=False)
        return encoded

    def _type(self, data_type: DataType) -> str:
        # Graph types were validated on insertion; the cache holds them alive by way of the graph.
        encoded = self._types.get(id(data_type))
        if encoded is None:
            encoded = self._types[id(data_type)] = data_type_json(data_type)
        return encoded


def _policy_json(policy: ExecutionPolicy) -> str:
    timeout = policy.timeout_policy
    # Spider-py's own key, written only when it is not the default, so a policy Spider can
    # express is written exactly as Spider writes it (Spider's reader ignores the key).
    delay = policy.retry_delay
    retry_delay = (
        ""
        if delay == RetryDelay()
        else f',"retry_delay":{{"first_ms":{delay.first_ms},"max_ms":{delay.max_ms}}}'
    )
    return (
        f'{{"max_num_retry":{policy.max_num_retry},'
        f'"max_num_instances":{policy.max_num_instances},'
        f'"timeout_policy":{{"soft_timeout_ms":{timeout.soft_timeout_ms},'
        f'"hard_timeout_ms":{timeout.hard_timeout_ms}}}{retry_delay}}}'
    )
