"""JobBuilder makes exactly the graph and inputs Spider's codec makes from the same tasks."""

from __future__ import annotations

import json
from typing import Any

import ormsgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spider.client import (
    JobBuilder,
    JobDefinitionError,
    OutputDecodeError,
    RetryDelay,
    TaskSpec,
    decode_outputs,
    execution_policy,
)
from spider.core import (
    DataType,
    ExecutionPolicy,
    FloatType,
    InputSource,
    IntType,
    IntWidth,
    StructType,
    TaskDescriptor,
    TaskGraph,
    TdlContext,
    TerminationTaskDescriptor,
    TimeoutPolicy,
    decode_job_submission,
    encode_job_inputs,
    encode_task_graph,
    task_graph_to_json,
)

from .tasks import Point, add, double, fails, names, narrow, norm, publish, shift, split

INT = DataType(IntType())
F64 = DataType(FloatType())
POINT = DataType(StructType("Point"))


def pack(value: Any) -> bytes:
    return ormsgpack.packb(value)


def test_graph_and_inputs_match_the_codec_byte_for_byte() -> None:
    job = JobBuilder()
    total = job.add(add, 1, 2)
    halves = job.add(split, total, policy=execution_policy(retries=2, instances=3))
    job.add(add, halves[0], halves[1])
    job.add(double, 40)
    job.commit(publish)
    job.cleanup(publish, policy=execution_policy(soft_timeout_ms=1000, hard_timeout_ms=2000))
    description = job.build()

    expected = TaskGraph(
        commit_task=TerminationTaskDescriptor(TdlContext("tests", "publish")),
        cleanup_task=TerminationTaskDescriptor(
            TdlContext("tests", "publish"), ExecutionPolicy(0, 1, TimeoutPolicy(1000, 2000))
        ),
    )
    expected.insert_task(TaskDescriptor(TdlContext("tests", "math::add"), [INT, INT], [INT]))
    expected.insert_task(
        TaskDescriptor(
            TdlContext("tests", "math::split"),
            [INT],
            [INT, INT],
            execution_policy=ExecutionPolicy(2, 3),
            input_sources=[InputSource(0, 0)],
        )
    )
    expected.insert_task(
        TaskDescriptor(
            TdlContext("tests", "math::add"),
            [INT, INT],
            [INT],
            input_sources=[InputSource(1, 0), InputSource(1, 1)],
        )
    )
    expected.insert_task(TaskDescriptor(TdlContext("tests", "math::double"), [INT], [INT]))

    assert task_graph_to_json(description.graph) == task_graph_to_json(expected)
    graph_bytes, input_bytes = description.encode()
    assert graph_bytes == encode_task_graph(expected)
    assert input_bytes == encode_job_inputs([pack(1), pack(2), pack(40)])
    submission = decode_job_submission(graph_bytes, input_bytes)
    assert submission.task_graph.same_as(expected)
    assert submission.inputs == description.input_payloads
    # Graph outputs: tasks without children (2 and 3), in index order.
    assert description.output_annotations == (int, int)
    assert description.output_labels == ("math::add[2].0", "math::double[3].0")


def test_the_json_has_spiders_shape() -> None:
    job = JobBuilder()
    job.add(shift, Point(1.0, 2.0), 0.5)
    document = json.loads(task_graph_to_json(job.build().graph))
    assert document == {
        "schema_version": "0.1.0",
        "tasks": [
            {
                "tdl_context": {"package": "tests", "task_func": "geo::shift"},
                "inputs": [
                    {"Value": {"Struct": "Point"}},
                    {"Value": {"Primitive": {"Float": "Float64"}}},
                ],
                "outputs": [{"Value": {"Struct": "Point"}}],
                "input_sources": None,
            }
        ],
        "commit_task": None,
        "cleanup_task": None,
    }
    assert job.build().input_payloads == (pack([1.0, 2.0]), pack(0.5))


def test_remote_tasks_are_typed_by_annotations() -> None:
    remote = TaskSpec.remote("complex", "complex::dot", [list[float], list[float]], [float])
    job = JobBuilder()
    job.add(remote, [1.0], [2.0])
    task = job.build().graph.task(0)
    assert task.tdl_context == TdlContext("complex", "complex::dot")
    assert task.outputs == (F64,)


def test_a_one_output_handle_wires_like_its_output() -> None:
    job = JobBuilder()
    first = job.add(add, 1, 2)
    job.add(double, first)
    job.add(double, first[0])
    graph = job.build().graph
    assert graph.task(1).input_sources == graph.task(2).input_sources == (InputSource(0, 0),)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda job: job.add(add, 1), r"input\(s\) b not given"),
        (lambda job: job.add(add, 1, 2, 3), "3 arguments given, but it takes 2"),
        (lambda job: job.add(add, 1, "2"), r"input 'b' \(position 1\): expected int"),
        (lambda job: job.add(narrow, 2**40), "input 'x'"),
        (
            lambda job: job.add(add, job.add(double, 1), 5),
            "input 'b' .* is the value 5, but other inputs are wired",
        ),
        (
            lambda job: job.add(norm, job.add(double, 1)),
            r"declared Value\(Struct\(Point\)\) but output 0 of task 0 \('math::double'\)",
        ),
        (lambda job: job.add(double, job.add(split, 4)), "has 2 outputs; pass one of them"),
        (lambda job: job.add(split, 4)[2], "has 2 output"),
        (lambda job: job.add(double, JobBuilder().add(double, 1)), "belongs to another job"),
        (lambda job: job.add(print), "not a @task function"),
        (lambda job: job.commit(double), "a commit task takes only ctx"),
        (lambda job: job.build(), "at least one task"),
        (lambda job: job.add(double, 1, policy=3), "policy must be an ExecutionPolicy"),
    ],
)
def test_bad_jobs_are_refused_with_a_clear_message(build: Any, message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        build(JobBuilder())


def test_bad_policies_are_refused() -> None:
    with pytest.raises(JobDefinitionError, match="hard_timeout_ms"):
        execution_policy(soft_timeout_ms=500, hard_timeout_ms=500)
    with pytest.raises(JobDefinitionError, match="max_num_instances"):
        execution_policy(instances=0)
    with pytest.raises(JobDefinitionError, match=r"max_ms \(100\) must be at least first_ms"):
        execution_policy(retry_delay_ms=500, max_retry_delay_ms=100)


def test_the_retry_delay_defaults_to_spider_pys_and_can_be_turned_off() -> None:
    assert execution_policy(retries=3).retry_delay == RetryDelay(1_000, 60_000)
    assert execution_policy(retry_delay_ms=0, max_retry_delay_ms=0).retry_delay == RetryDelay(0, 0)
    assert (
        execution_policy(retry_delay_ms=50, max_retry_delay_ms=400).retry_delay.longest_ms(9) == 400
    )


def test_a_refused_task_leaves_the_job_unchanged() -> None:
    job = JobBuilder()
    with pytest.raises(JobDefinitionError):
        job.add(add, 1, "x")
    job.add(fails, 7)
    description = job.build()
    assert len(description.graph) == 1
    assert description.input_payloads == (pack(7),)


@given(
    items=st.lists(st.binary(max_size=8), max_size=5),
    table=st.dictionaries(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)),
)
def test_values_round_trip_through_the_declared_types(
    items: list[bytes], table: dict[int, float]
) -> None:
    job = JobBuilder()
    job.add(names, items, table)
    payloads = job.build().input_payloads
    assert decode_outputs(1, payloads, [list[bytes], dict[int, float]]) == [items, table]


def test_outputs_decode_by_type_or_as_plain_values() -> None:
    payloads = [pack([1.5, 2.5]), pack(3)]
    assert decode_outputs(1, payloads, [Point, int]) == [Point(1.5, 2.5), 3]
    assert decode_outputs(1, payloads, None) == [[1.5, 2.5], 3]
    with pytest.raises(OutputDecodeError, match=r"2 output.* but 1 type"):
        decode_outputs(1, payloads, [Point])
    with pytest.raises(OutputDecodeError, match="job 1, output 1"):
        decode_outputs(1, payloads, [Point, bytes])


def test_sized_ints_describe_their_width() -> None:
    job = JobBuilder()
    job.add(narrow, 5)
    assert job.build().graph.task(0).inputs == (DataType(IntType(IntWidth.INT32)),)
