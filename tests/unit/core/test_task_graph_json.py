"""A task graph in Spider's JSON (and zstd of it): exact shape, strict reading, replayed rules."""

from __future__ import annotations

import copy
import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings

from spider.core.compression import compress
from spider.core.data_types import BytesType, DataType, FloatType, IntType, IntWidth, StructType
from spider.core.errors import TaskGraphError
from spider.core.task_graph import (
    ExecutionPolicy,
    InputSource,
    RetryDelay,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
    decode_task_graph,
    encode_task_graph,
    task_graph_from_json,
    task_graph_to_json,
)

from .core_strategies import task_graphs

F64: dict[str, Any] = {"Value": {"Primitive": {"Float": "Float64"}}}
I64: dict[str, Any] = {"Value": {"Primitive": {"Int": "Int64"}}}
BYTES: dict[str, Any] = {"Value": {"Bytes": {}}}


def ctx(name: str) -> dict[str, str]:
    return {"package": "test_pkg", "task_func": name}


def entry(
    name: str,
    inputs: list[Any],
    outputs: list[Any],
    sources: list[tuple[int, int]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "tdl_context": ctx(name),
        **extra,
        "inputs": inputs,
        "outputs": outputs,
        "input_sources": None
        if sources is None
        else [{"task_idx": task_idx, "position": position} for task_idx, position in sources],
    }


def document(tasks: list[Any], commit: Any = None, cleanup: Any = None) -> dict[str, Any]:
    return {
        "schema_version": "0.1.0",
        "tasks": tasks,
        "commit_task": commit,
        "cleanup_task": cleanup,
    }


def parse(value: Any) -> TaskGraph:
    return task_graph_from_json(json.dumps(value))


INT32 = {"Value": {"Primitive": {"Int": "Int32"}}}
BOOL = {"Value": {"Primitive": "Boolean"}}
LIST_INT32 = {"Value": {"List": {"Primitive": {"Int": "Int32"}}}}
LIST_BYTES: dict[str, Any] = {"Value": {"List": {"Bytes": {}}}}
MAP = {"Value": {"Map": {"key": {"Int": "Int32"}, "value": {"Primitive": {"Float": "Float64"}}}}}
RESULT = {"Value": {"Struct": "Result"}}
F32 = {"Value": {"Primitive": {"Float": "Float32"}}}

# Spider's test_task_graph_serde.rs document, in the current descriptor shape.
UPSTREAM = document(
    [
        entry("fn_1", [INT32, F64], [I64, BOOL]),
        entry("fn_2", [BYTES], [LIST_INT32, BYTES]),
        entry("fn_3", [I64], [MAP, RESULT], [(0, 0)]),
        entry("fn_4", [MAP, BOOL], [INT32], [(2, 0), (0, 1)]),
        entry("fn_5", [MAP, LIST_INT32], [F32, BYTES], [(2, 0), (1, 0)]),
        entry("fn_6", [INT32], [BOOL, LIST_BYTES], [(3, 0)]),
        entry(
            "fn_7", [LIST_BYTES, LIST_BYTES, BOOL, BYTES], [I64], [(5, 1), (5, 1), (5, 0), (4, 1)]
        ),
        entry("fn_8", [LIST_BYTES], [F64], [(5, 1)]),
        entry("fn_9", [BYTES, LIST_INT32], [INT32], [(1, 1), (1, 0)]),
        entry("fn_10", [], []),
    ]
)


def test_upstreams_document_round_trips_to_the_same_json() -> None:
    graph = parse(UPSTREAM)
    assert len(graph) == 10
    assert graph.parents(6) == (4, 5)
    assert json.loads(task_graph_to_json(graph)) == UPSTREAM
    assert task_graph_from_json(task_graph_to_json(graph)).same_as(graph)


def test_the_writer_is_compact_with_spiders_key_order() -> None:
    graph = TaskGraph(
        commit_task=TerminationTaskDescriptor(TdlContext("p", "ns::commit")),
        cleanup_task=TerminationTaskDescriptor(TdlContext("p", "ns::cleanup"), ExecutionPolicy(3)),
    )
    f64 = DataType(FloatType())
    graph.insert_task(TaskDescriptor(TdlContext("p", "ns::f"), [f64, f64], [f64]))
    graph.insert_task(
        TaskDescriptor(
            TdlContext("p", "ns::g"),
            [f64],
            [DataType(BytesType())],
            ExecutionPolicy(2, 1, TimeoutPolicy(1000, 2000)),
            [InputSource(0, 0)],
        )
    )
    assert task_graph_to_json(graph) == (
        '{"schema_version":"0.1.0","tasks":['
        '{"tdl_context":{"package":"p","task_func":"ns::f"},'
        '"inputs":[{"Value":{"Primitive":{"Float":"Float64"}}},'
        '{"Value":{"Primitive":{"Float":"Float64"}}}],'
        '"outputs":[{"Value":{"Primitive":{"Float":"Float64"}}}],"input_sources":null},'
        '{"tdl_context":{"package":"p","task_func":"ns::g"},'
        '"execution_policy":{"max_num_retry":2,"max_num_instances":1,'
        '"timeout_policy":{"soft_timeout_ms":1000,"hard_timeout_ms":2000}},'
        '"inputs":[{"Value":{"Primitive":{"Float":"Float64"}}}],'
        '"outputs":[{"Value":{"Bytes":{}}}],"input_sources":[{"task_idx":0,"position":0}]}],'
        '"commit_task":{"tdl_context":{"package":"p","task_func":"ns::commit"}},'
        '"cleanup_task":{"tdl_context":{"package":"p","task_func":"ns::cleanup"},'
        '"execution_policy":{"max_num_retry":3,"max_num_instances":1,'
        '"timeout_policy":{"soft_timeout_ms":150000,"hard_timeout_ms":300000}}}}'
    )


def test_an_explicit_default_policy_is_left_out() -> None:
    graph = TaskGraph()
    graph.insert_task(TaskDescriptor(TdlContext("p", "f"), [], [], ExecutionPolicy()))
    assert "execution_policy" not in task_graph_to_json(graph)


def test_the_reference_example_parses() -> None:
    # docs/task-graph.md#the-json-format's example, with the policy's optional timeout_policy
    # left out.
    text = """{"schema_version":"0.1.0",
     "tasks":[
      {"tdl_context":{"package":"p","task_func":"ns::f"},
       "inputs":[{"Value":{"Primitive":{"Float":"Float64"}}},{"Value":{"Primitive":{"Float":"Float64"}}}],
       "outputs":[{"Value":{"Primitive":{"Float":"Float64"}}}],"input_sources":null},
      {"tdl_context":{"package":"p","task_func":"ns::g"},
       "execution_policy":{"max_num_retry":2,"max_num_instances":1},
       "inputs":[{"Value":{"Primitive":{"Float":"Float64"}}}],
       "outputs":[{"Value":{"Bytes":{}}}],"input_sources":[{"task_idx":0,"position":0}]}],
     "commit_task":{"tdl_context":{"package":"p","task_func":"ns::commit"}},
     "cleanup_task":null}"""
    graph = task_graph_from_json(text)
    assert graph.tasks[1].execution_policy == ExecutionPolicy(2, 1, TimeoutPolicy())
    assert graph.commit_task == TerminationTaskDescriptor(TdlContext("p", "ns::commit"))
    assert graph.cleanup_task is None
    assert graph.graph_input_types() == (DataType(FloatType()), DataType(FloatType()))
    assert graph.graph_output_types() == (DataType(BytesType()),)


def test_absent_input_sources_mean_an_input_task() -> None:
    raw = entry("f", [I64], [])
    del raw["input_sources"]
    assert parse(document([raw])).is_input_task(0)


def test_unknown_keys_inside_descriptors_are_ignored() -> None:
    raw = entry("f", [I64], [I64], future_field={"x": 1})
    raw["tdl_context"]["version"] = 2
    sink = entry("g", [I64], [], [(0, 0)])
    sink["input_sources"][0]["note"] = "ignored"
    policy = {"max_num_retry": 1, "max_num_instances": 2, "priority": 9}
    commit = {"tdl_context": ctx("c"), "execution_policy": policy, "extra": []}
    graph = parse(document([raw, sink], commit=commit))
    assert graph.commit_task is not None
    assert graph.commit_task.execution_policy == ExecutionPolicy(1, 2)
    assert graph.parents(1) == (0,)


@settings(deadline=None)
@given(task_graphs())
def test_json_round_trip(graph: TaskGraph) -> None:
    text = task_graph_to_json(graph)
    decoded = task_graph_from_json(text)
    assert decoded.same_as(graph)
    assert task_graph_to_json(decoded) == text


@settings(deadline=None)
@given(task_graphs())
def test_zstd_round_trip(graph: TaskGraph) -> None:
    data = encode_task_graph(graph)
    assert decode_task_graph(data).same_as(graph)
    assert decode_task_graph(data).graph_output_types() == graph.graph_output_types()


def test_any_zstd_stream_of_the_json_decodes() -> None:
    text = json.dumps(UPSTREAM, indent=2).encode()
    split = len(text) // 2
    assert len(decode_task_graph(compress(text[:split]) + compress(text[split:]))) == 10


def test_the_decompression_limit_applies() -> None:
    data = compress(json.dumps(UPSTREAM).encode())
    with pytest.raises(TaskGraphError, match="invalid task graph: zstd data decompresses to more"):
        decode_task_graph(data, limit=100)


@pytest.mark.parametrize("data", [b"", b"{}", b"\x28\xb5\x2f\xfd\x00"])
def test_bytes_that_are_not_zstd_are_rejected(data: bytes) -> None:
    with pytest.raises(TaskGraphError, match="invalid task graph: invalid zstd data"):
        decode_task_graph(data)


# -- Schema version -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["0.1.0", "0.1.1", "0.1.99", "0.1.0+build.7", "0.1.18446744073709551615"]
)
def test_compatible_versions_are_accepted(version: str) -> None:
    assert len(parse({**document([]), "schema_version": version})) == 0


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("0.0.0", "incompatible task graph schema version: found '0.0.0'"),
        ("100000.0.0", "incompatible task graph schema version: found '100000.0.0'"),
        ("0.2.0", "incompatible"),
        ("1.1.0", "incompatible"),
        ("0.1.0-alpha", "incompatible"),
        ("0.1.5-rc.1", "incompatible"),
        (True, 'schema_version must be a semver string such as "0.1.0", got bool'),
        (None, "must be a semver string.*got null"),
        (1, "must be a semver string.*got int"),
        (0.1, "must be a semver string.*got float"),
        (["0.1.0"], "must be a semver string.*got list"),
        ("0.1", "is not a semver version"),
        ("v0.1.0", "is not a semver version"),
        ("00.1.0", "is not a semver version"),
        ("0.1.0 ", "is not a semver version"),
        ("0.1.0-", "is not a semver version"),
        ("0.1.0+", "is not a semver version"),
        ("0.1.0-01", "is not a semver version"),
        ("\uff10.1.0", "is not a semver version"),
        ("", "is not a semver version"),
        ("0.1.18446744073709551616", "has a number above 2\\*\\*64-1"),
        ("0.1." + "9" * 5000, "has a number above"),
    ],
)
def test_invalid_versions_are_rejected(version: Any, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        parse({**document([]), "schema_version": version})


def test_the_version_is_checked_before_the_tasks() -> None:
    broken = {**document(["not a task"]), "schema_version": "100000.0.0"}
    with pytest.raises(TaskGraphError, match="incompatible task graph schema version"):
        parse(broken)
    with pytest.raises(TaskGraphError, match=r"tasks\[0\]: expected a task descriptor"):
        parse(document(["not a task"]))


# -- Top level ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["schema_version", "tasks", "commit_task", "cleanup_task"])
def test_each_top_level_field_is_required(field: str) -> None:
    value = document([])
    del value[field]
    with pytest.raises(TaskGraphError, match=f"missing field `{field}`"):
        parse(value)


def test_a_repeated_top_level_key_is_rejected() -> None:
    text = '{"schema_version":"0.1.0","tasks":[],"tasks":[],"commit_task":null,"cleanup_task":null}'
    with pytest.raises(TaskGraphError, match='duplicate top-level key "tasks"'):
        task_graph_from_json(text)


def test_an_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(TaskGraphError, match='unknown top-level key "priority"'):
        parse({**document([]), "priority": 1})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object, got an array"),
        ('"graph"', "expected a JSON object, got a string"),
        ("null", "expected a JSON object, got null"),
        ("42", "expected a JSON object, got the number 42"),
        ("", "invalid task graph JSON: Expecting value"),
        ("   ", "invalid task graph JSON"),
        ("{", "invalid task graph JSON: expected a key"),
        ('{"schema_version" "0.1.0"}', "expected ':'"),
        ('{"schema_version": "0.1.0" "tasks": []}', "expected ',' or '}'"),
        ('{"schema_version": "0.1.0",}', "expected a key"),
        ('{"tasks": [1,]}', "invalid task graph JSON"),
        ('{"tasks": NaN}', "NaN is not valid JSON"),
        ('{"tasks": [Infinity]}', "Infinity is not valid JSON"),
        ('{"tasks": [1e999999]}', "number 1e999999 is out of range"),
        ('{"tasks": [-1e400]}', "out of range"),
        (json.dumps(document([])) + " {}", "unexpected data after the top-level object"),
        ("\ufeff" + json.dumps(document([])), "expected a JSON object|invalid task graph JSON"),
        ('{"tasks": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deeply"),
        ("[" * 100_000, "nested too deeply|invalid task graph JSON"),
    ],
)
def test_bad_json_is_a_task_graph_error(text: str, message: str) -> None:
    with pytest.raises(TaskGraphError, match=message):
        task_graph_from_json(text)


def test_invalid_utf8_is_a_task_graph_error() -> None:
    with pytest.raises(TaskGraphError, match="not UTF-8"):
        task_graph_from_json(b'{"schema_version": "\xff"}')


def test_whitespace_around_members_is_allowed() -> None:
    text = json.dumps(UPSTREAM, indent=4).replace(":", " \t:\r\n ")
    assert len(task_graph_from_json(text)) == 10


# -- Task descriptors ---------------------------------------------------------------------------


def test_removing_task_0_invalidates_the_graph() -> None:
    broken = copy.deepcopy(UPSTREAM)
    del broken["tasks"][0]
    with pytest.raises(TaskGraphError, match="invalid task graph: task 1: input 0"):
        parse(broken)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [entry("a", [I64], [I64], [(0, 0)])],
            r"task 0: input 0 reads task 0, which is not an earlier task \(no task exists yet\)",
        ),
        (
            [entry("a", [I64], [I64], [(1, 0)]), entry("b", [I64], [I64], [(0, 0)])],
            "task 0: input 0 reads task 1, which is not an earlier task",
        ),
        (
            [entry("a", [], [I64]), entry("b", [F64], [], [(0, 0)])],
            r"task 1: input 0 is declared Value\(Float64\) but output 0 of task 0 is "
            r"Value\(Int64\)",
        ),
        (
            [entry("a", [], [I64]), entry("b", [I64], [], [(0, 1)])],
            "task 1: input 0 reads output 1 of task 0, which has 1 output",
        ),
        (
            [entry("a", [], [I64]), entry("b", [I64, I64], [], [(0, 0)])],
            "task 1: 2 inputs but 1 input source",
        ),
        (
            [entry("a", [], [I64]), entry("b", [], [], [])],
            "task 1: it has no inputs, so it must be an input task",
        ),
        (
            [entry("a", [], [I64]), entry("b", [I64], [], [(10**30, 0)])],
            "task 1: input 0 reads task 1000000000000000000000000000000",
        ),
        (
            [entry("a", [], [I64]), entry("b", [I64], [], [(0, 2**64)])],
            "task 1: input 0 reads output 18446744073709551616 of task 0",
        ),
    ],
)
def test_graph_rules_are_replayed(tasks: list[Any], message: str) -> None:
    with pytest.raises(TaskGraphError, match="invalid task graph: " + message):
        parse(document(tasks))


def test_mixed_graph_inputs_and_parent_outputs_are_rejected() -> None:
    mixed = entry("b", [I64, I64], [], [(0, 0)])
    mixed["input_sources"].append(None)
    with pytest.raises(
        TaskGraphError,
        match=r"tasks\[1\]\.input_sources\[1\]: expected \{\"task_idx\": n, \"position\": p\}, "
        "got null; a task reads either only graph inputs",
    ):
        parse(document([entry("a", [], [I64]), mixed]))


def replace(value: dict[str, Any], path: list[Any], new: Any) -> dict[str, Any]:
    result = copy.deepcopy(value)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return result


_DELETE = object()
POLICY = ["tasks", 1, "execution_policy"]
BASE = document(
    [entry("a", [I64], [I64]), entry("b", [I64], [I64], [(0, 0)], execution_policy={})],
    commit={"tdl_context": ctx("c")},
)


@pytest.mark.parametrize(
    ("path", "new", "message"),
    [
        (["tasks"], {}, "tasks must be an array of task descriptors, got an object"),
        (["tasks", 0], [], r"tasks\[0\]: expected a task descriptor, got an array"),
        (["tasks", 0, "tdl_context"], _DELETE, r"tasks\[0\]: missing field `tdl_context`"),
        (["tasks", 0, "inputs"], _DELETE, r"tasks\[0\]: missing field `inputs`"),
        (["tasks", 0, "outputs"], _DELETE, r"tasks\[0\]: missing field `outputs`"),
        (["tasks", 0, "tdl_context"], "p::a", r"tdl_context: expected \{\"package\""),
        (["tasks", 0, "tdl_context", "package"], 5, r"tdl_context\.package: expected a string"),
        (["tasks", 0, "tdl_context", "task_func"], _DELETE, "missing field `task_func`"),
        (["tasks", 0, "tdl_context", "task_func"], "\ud800", "encodable as UTF-8"),
        (["tasks", 0, "inputs"], I64, r"tasks\[0\]\.inputs: expected an array of type"),
        (["tasks", 0, "outputs", 0], "Int64", r"tasks\[0\]\.outputs\[0\]: expected"),
        (["tasks", 1, "input_sources"], {"task_idx": 0}, "expected null or an array"),
        (["tasks", 1, "input_sources", 0, "task_idx"], _DELETE, "missing field `task_idx`"),
        (["tasks", 1, "input_sources", 0, "position"], -1, r"position: expected a non-negative"),
        (["tasks", 1, "input_sources", 0, "task_idx"], 0.0, "task_idx: expected a non-negative"),
        (["tasks", 1, "input_sources", 0, "task_idx"], True, "got the boolean true"),
        (["tasks", 1, "input_sources", 0, "task_idx"], "0", "got a string"),
        ([*POLICY, "max_num_retry"], _DELETE, "missing field `max_num_retry`"),
        ([*POLICY, "max_num_instances"], _DELETE, "missing field `max_num_instances`"),
        (POLICY, [], r"execution_policy: expected an execution policy object"),
        ([*POLICY, "max_num_instances"], 0, "max_num_instances is 0"),
        ([*POLICY, "max_num_retry"], 2**32, "max_num_retry is 4294967296"),
        ([*POLICY, "timeout_policy"], None, r"timeout_policy: expected \{\"soft_timeout_ms\""),
        ([*POLICY, "timeout_policy"], {"soft_timeout_ms": 100}, "missing field `hard_timeout"),
        (
            [*POLICY, "timeout_policy"],
            {"soft_timeout_ms": 500, "hard_timeout_ms": 500},
            r"tasks\[1\]\.execution_policy\.timeout_policy: invalid timeout policy: hard",
        ),
        (
            [*POLICY, "timeout_policy"],
            {"soft_timeout_ms": 50, "hard_timeout_ms": 500},
            "soft_timeout_ms is 50",
        ),
        (["commit_task"], [], "commit_task: expected a termination task descriptor or null"),
        (["commit_task", "tdl_context"], _DELETE, "commit_task: missing field `tdl_context`"),
        (["cleanup_task"], {"tdl_context": {"package": "p"}}, "missing field `task_func`"),
        (
            ["commit_task", "execution_policy"],
            {"max_num_retry": 0, "max_num_instances": -2},
            r"commit_task\.execution_policy\.max_num_instances: expected a non-negative",
        ),
    ],
)
def test_descriptor_defects_name_their_place(path: list[Any], new: Any, message: str) -> None:
    valid = replace(BASE, [*POLICY], {"max_num_retry": 1, "max_num_instances": 1})
    assert len(parse(valid)) == 2
    with pytest.raises(TaskGraphError, match=message):
        parse(replace(valid, path, new))


def test_type_descriptor_defects_name_the_task_and_input() -> None:
    bad = entry("a", [I64, {"Value": {"Primitive": {"Int": "Int65"}}}], [])
    with pytest.raises(
        TaskGraphError,
        match=r'tasks\[0\]\.inputs\[1\]\.Value\.Primitive\.Int: expected "Int8"',
    ):
        parse(document([bad]))


def test_many_distinct_types_all_decode() -> None:
    # More distinct descriptors than the decoder's small cache of recent ones.
    types = [{"Value": {"Struct": f"S{n}"}} for n in range(40)]
    graph = parse(
        document(
            [
                entry("a", types, types),
                entry("b", types[::-1], [], [(0, n) for n in range(39, -1, -1)]),
            ]
        )
    )
    assert graph.graph_input_types()[7] == DataType(StructType("S7"))
    assert graph.parents(1) == (0,)


def test_a_descriptor_equal_in_json_but_not_in_type_is_not_confused() -> None:
    # 1 == 1.0 == True in Python; descriptors never hold numbers, so caching by JSON is sound.
    graph = parse(document([entry("a", [I64, {"Value": {"Primitive": {"Int": "Int8"}}}], [])]))
    assert graph.graph_input_types() == (DataType(IntType()), DataType(IntType(IntWidth.INT8)))


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    was_enabled = gc.isenabled()
    try:
        if enabled:
            gc.enable()
        else:
            gc.disable()
        parse(UPSTREAM)
        with pytest.raises(TaskGraphError):
            parse(document(["not a task"]))
        assert gc.isenabled() is enabled
    finally:
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def test_a_retry_delay_is_spider_pys_own_key_written_only_when_not_the_default() -> None:
    graph = TaskGraph()
    for delay in (RetryDelay(), RetryDelay(250, 5_000)):
        graph.insert_task(
            TaskDescriptor(TdlContext("p", "f"), [], [], ExecutionPolicy(2, 1, retry_delay=delay))
        )
    text = task_graph_to_json(graph)
    assert text.count('"retry_delay"') == 1
    assert '"hard_timeout_ms":300000},"retry_delay":{"first_ms":250,"max_ms":5000}}' in text
    again = task_graph_from_json(text)
    assert [task.execution_policy.retry_delay for task in again.tasks] == [
        RetryDelay(),
        RetryDelay(250, 5_000),
    ]


def test_an_invalid_retry_delay_names_its_place() -> None:
    policy = {"max_num_retry": 1, "max_num_instances": 1, "retry_delay": {"first_ms": 5}}
    with pytest.raises(TaskGraphError, match=r"tasks\[0\]\.execution_policy\.retry_delay"):
        parse(document([entry("f", [I64], [], execution_policy=policy)]))
