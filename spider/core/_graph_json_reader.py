"""Reading Spider's JSON form of a task graph.

Strict where serde is strict: the four top-level keys are required, and an unknown or repeated
top-level key is an error; the schema version is checked before the tasks are looked at; the
tasks are replayed through ``TaskGraph.insert_task``, so every graph rule is checked again.
Unknown keys inside descriptors are ignored, as serde does. Every defect raises
``TaskGraphError`` naming the place (``tasks[3].inputs[1].Value.List``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

from spider.core._graph_descriptors import (
    InputSource,
    TaskDescriptor,
    TdlContext,
    TerminationTaskDescriptor,
)
from spider.core._graph_model import TaskGraph
from spider.core._graph_policy import ExecutionPolicy, RetryDelay, TimeoutPolicy
from spider.core._graph_schema_version import check_schema_version
from spider.core._graph_types import json_kind, parse_data_type
from spider.core.data_types import DataType
from spider.core.errors import TaskGraphError

_TOP_LEVEL_KEYS = ("schema_version", "tasks", "commit_task", "cleanup_task")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Recently parsed type descriptors, compared by JSON value: graphs repeat a few types on
# thousands of edges, and sharing one object per type makes the edge check an identity test.
_RECENT_TYPES = 16
_Built = TypeVar("_Built")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"the number {shown} is out of range")
    return value


# Repeated keys are caught at the top level only: checking every object from Python (an
# object_pairs_hook) makes parsing 70 % slower on large graphs. Inside descriptors the last
# value wins, where serde would refuse the document.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def data_type_from_json(text: str | bytes) -> DataType:
    """Parse the JSON text of one type descriptor."""
    return parse_data_type(_load_json(text, "type descriptor"), "type descriptor")


def task_graph_from_json(text: str | bytes) -> TaskGraph:
    """Parse and validate Spider's JSON form of a task graph."""
    with _cyclic_gc_paused():
        return _task_graph_from_json(text)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold off the cycle collector while a large graph is built.

    Parsing allocates a million containers for a 250,000-edge graph, and each allocation burst
    triggers a collection that walks every live object: that is over half the decoding time.
    Nothing built here is cyclic garbage, so pausing loses nothing. Reference counting still
    frees memory as usual; the previous state is restored, so a caller that disabled the
    collector keeps it disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _task_graph_from_json(text: str | bytes) -> TaskGraph:
    document = _text(text, "task graph")
    try:
        members = _top_level_members(document)
    except TaskGraphError:
        raise
    except RecursionError:
        raise TaskGraphError("invalid task graph JSON: values are nested too deeply") from None
    except ValueError as exc:
        raise TaskGraphError(f"invalid task graph JSON: {exc}") from None
    # The version decides how the rest reads, so it is checked before anything else is parsed.
    check_schema_version(members["schema_version"])
    commit = _termination(members["commit_task"], "commit_task")
    cleanup = _termination(members["cleanup_task"], "cleanup_task")
    graph = TaskGraph(commit_task=commit, cleanup_task=cleanup)
    raw_tasks = members["tasks"]
    if not isinstance(raw_tasks, list):
        raise TaskGraphError(
            f"invalid task graph: tasks must be an array of task descriptors, "
            f"got {json_kind(raw_tasks)}"
        )
    types = _TypeReader()
    for index, raw_task in enumerate(raw_tasks):
        descriptor = _task(raw_task, f"tasks[{index}]", types)
        try:
            graph.insert_task(descriptor)
        except TaskGraphError as exc:
            raise TaskGraphError(f"invalid task graph: {exc}") from None
    return graph


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskGraphError(
            f"invalid {what} JSON: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def _load_json(data: str | bytes, what: str) -> Any:
    text = _text(data, what)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise TaskGraphError(f"invalid {what} JSON: values are nested too deeply") from None
    except ValueError as exc:
        raise TaskGraphError(f"invalid {what} JSON: {exc}") from None


def _top_level_members(text: str) -> dict[str, Any]:
    """Parse the top-level object member by member, to see repeated and unknown keys."""
    position = _skip(text, 0)
    if not text.startswith("{", position):
        value = _DECODER.decode(text)
        raise TaskGraphError(f"invalid task graph: expected a JSON object, got {json_kind(value)}")
    members: dict[str, Any] = {}
    position = _skip(text, position + 1)
    if text.startswith("}", position):
        position += 1
    else:
        while True:
            if not text.startswith('"', position):
                _syntax_error("expected a key in double quotes", text, position)
            key, position = _DECODER.raw_decode(text, position)
            position = _skip(text, position)
            if not text.startswith(":", position):
                _syntax_error("expected ':' after a key", text, position)
            value, position = _decode_value(text, _skip(text, position + 1))
            if key in members:
                raise TaskGraphError(f"invalid task graph: duplicate top-level key {_quoted(key)}")
            if key not in _TOP_LEVEL_KEYS:
                raise TaskGraphError(
                    f"invalid task graph: unknown top-level key {_quoted(key)}, expected "
                    + ", ".join(f"`{name}`" for name in _TOP_LEVEL_KEYS)
                )
            members[key] = value
            position = _skip(text, position)
            if text.startswith(",", position):
                position = _skip(text, position + 1)
            elif text.startswith("}", position):
                position += 1
                break
            else:
                _syntax_error("expected ',' or '}' after a value", text, position)
    if _skip(text, position) != len(text):
        _syntax_error("unexpected data after the top-level object", text, position)
    missing = [f"`{key}`" for key in _TOP_LEVEL_KEYS if key not in members]
    if missing:
        raise TaskGraphError(f"invalid task graph: missing field {', '.join(missing)}")
    return members


def _decode_value(text: str, position: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        # Raised by our hooks (NaN, infinite numbers) or by int() on numbers of 4300+ digits.
        raise ValueError(f"{exc} (in the value starting at char {position})") from None


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return position if match is None else match.end()


def _syntax_error(message: str, text: str, position: int) -> NoReturn:
    raise json.JSONDecodeError(message, text, position)


def _quoted(key: str) -> str:
    return json.dumps(key if len(key) <= 64 else key[:64] + "...", ensure_ascii=False)


class _TypeReader:
    """Parses type descriptors, handing out one object per distinct recent descriptor."""

    def __init__(self) -> None:
        self._recent: list[tuple[Any, DataType]] = []

    def read_list(self, raw: Any, where: str) -> list[DataType]:
        if not isinstance(raw, list):
            _fail(f"{where}: expected an array of type descriptors, got {json_kind(raw)}")
        types = []
        for position, item in enumerate(raw):
            data_type = self._recently_read(item)
            if data_type is None:
                try:
                    data_type = parse_data_type(item, f"{where}[{position}]")
                except TaskGraphError as exc:
                    raise TaskGraphError(f"invalid task graph: {exc}") from None
                self._recent.insert(0, (item, data_type))
                del self._recent[_RECENT_TYPES:]
            types.append(data_type)
        return types

    def _recently_read(self, raw: Any) -> DataType | None:
        for cached_raw, data_type in self._recent:
            # Valid descriptors hold only objects and strings: equal JSON means the same type.
            if raw == cached_raw:
                return data_type
        return None


def _task(raw: Any, where: str, types: _TypeReader) -> TaskDescriptor:
    fields = _object(raw, where, "a task descriptor")
    context = _tdl_context(_field(fields, "tdl_context", where), f"{where}.tdl_context")
    policy = _policy(fields.get("execution_policy"), f"{where}.execution_policy")
    inputs = types.read_list(_field(fields, "inputs", where), f"{where}.inputs")
    outputs = types.read_list(_field(fields, "outputs", where), f"{where}.outputs")
    sources = _sources(fields.get("input_sources"), f"{where}.input_sources")
    return TaskDescriptor(context, inputs, outputs, policy, sources)


def _termination(raw: Any, where: str) -> TerminationTaskDescriptor | None:
    if raw is None:
        return None
    fields = _object(raw, where, "a termination task descriptor or null")
    context = _tdl_context(_field(fields, "tdl_context", where), f"{where}.tdl_context")
    policy = _policy(fields.get("execution_policy"), f"{where}.execution_policy")
    return TerminationTaskDescriptor(context, policy)


def _tdl_context(raw: Any, where: str) -> TdlContext:
    fields = _object(raw, where, '{"package": ..., "task_func": ...}')
    names = []
    for name in ("package", "task_func"):
        value = _field(fields, name, where)
        if not isinstance(value, str):
            _fail(f"{where}.{name}: expected a string, got {json_kind(value)}")
        names.append(value)
    try:
        return TdlContext(*names)
    except TaskGraphError as exc:
        raise TaskGraphError(f"invalid task graph: {where}: {exc}") from None


def _policy(raw: Any, where: str) -> ExecutionPolicy | None:
    if raw is None:
        return None
    fields = _object(raw, where, "an execution policy object")
    retries = _integer(_field(fields, "max_num_retry", where), f"{where}.max_num_retry")
    instances = _integer(_field(fields, "max_num_instances", where), f"{where}.max_num_instances")
    timeout = TimeoutPolicy()
    if "timeout_policy" in fields:
        timeout = _two_integers(
            fields["timeout_policy"],
            f"{where}.timeout_policy",
            ("soft_timeout_ms", "hard_timeout_ms"),
            TimeoutPolicy,
        )
    delay = RetryDelay()
    if "retry_delay" in fields:  # Spider-py's own key; Spider's reader ignores it
        delay = _two_integers(
            fields["retry_delay"], f"{where}.retry_delay", ("first_ms", "max_ms"), RetryDelay
        )
    try:
        return ExecutionPolicy(retries, instances, timeout, delay)
    except TaskGraphError as exc:
        _fail(f"{where}: {exc}")


def _two_integers(
    raw: Any, where: str, names: tuple[str, str], build: Callable[[int, int], _Built]
) -> _Built:
    """An object of two required integer fields (a timeout policy, a retry delay), built and
    checked by ``build``."""
    fields = _object(raw, where, f'{{"{names[0]}": ..., "{names[1]}": ...}}')
    first, second = (_integer(_field(fields, name, where), f"{where}.{name}") for name in names)
    try:
        return build(first, second)
    except TaskGraphError as exc:
        _fail(f"{where}: {exc}")


def _sources(raw: Any, where: str) -> list[InputSource] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        _fail(f"{where}: expected null or an array of sources, got {json_kind(raw)}")
    sources = []
    for position, item in enumerate(raw):
        # The common case inline: this loop runs once per edge of the graph.
        if type(item) is dict:
            task_idx, output = item.get("task_idx"), item.get("position")
            if type(task_idx) is int and type(output) is int and task_idx >= 0 and output >= 0:
                sources.append(InputSource(task_idx, output))
                continue
        sources.append(_source(item, f"{where}[{position}]"))
    return sources


def _source(item: Any, where: str) -> InputSource:
    if not isinstance(item, dict):
        _fail(
            f'{where}: expected {{"task_idx": n, "position": p}}, got {json_kind(item)}; '
            "a task reads either only graph inputs (input_sources null) or only outputs "
            "of earlier tasks"
        )
    task_idx = _integer(_field(item, "task_idx", where), f"{where}.task_idx")
    output = _integer(_field(item, "position", where), f"{where}.position")
    return InputSource(task_idx, output)


def _object(raw: Any, where: str, expected: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        _fail(f"{where}: expected {expected}, got {json_kind(raw)}")
    return raw


def _field(fields: dict[str, Any], name: str, where: str) -> Any:
    if name not in fields:
        _fail(f"{where}: missing field `{name}`")
    return fields[name]


def _integer(raw: Any, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        _fail(f"{where}: expected a non-negative integer, got {json_kind(raw)}")
    return raw


def _fail(message: str) -> NoReturn:
    raise TaskGraphError(f"invalid task graph: {message}")
