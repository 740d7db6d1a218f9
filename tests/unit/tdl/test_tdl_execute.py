"""``execute``: wire bytes in, wire bytes out, and every way a task can fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import ormsgpack
import pytest

from spider.core import (
    EMPTY_FRAME,
    TaskContext,
    TaskId,
    decode_frame,
    encode_frame,
    encode_task_outputs,
)
from spider.core.ids import JobId, ResourceGroupId, TaskInstanceId
from spider.tdl import (
    TaskExecutionError,
    TaskNotFound,
    TdlDeserializationError,
    TdlError,
    TdlPackage,
    TdlSerializationError,
    definition_of,
    load_package,
    task,
)
from spider.tdl import _errors as errors
from spider.tdl._registry import close_registry, root_module

PACKAGES_DIR = Path(__file__).resolve().parents[2] / "packages"


def index_ctx(position: int = 0) -> bytes:
    return TaskContext(
        JobId(42), TaskId.index(position), TaskInstanceId(1), ResourceGroupId(7)
    ).encode()


def commit_ctx(outputs: list[Any]) -> bytes:
    payloads = [ormsgpack.packb(value) for value in outputs]
    return TaskContext(
        JobId(42),
        TaskId.COMMIT,
        TaskInstanceId(1),
        ResourceGroupId(7),
        encode_task_outputs(payloads),
    ).encode()


def cleanup_ctx() -> bytes:
    return TaskContext(JobId(42), TaskId.CLEANUP, TaskInstanceId(1), ResourceGroupId(7)).encode()


def frame(*values: Any) -> bytes:
    return encode_frame([ormsgpack.packb(value) for value in values])


def outputs(raw: bytes) -> list[Any]:
    return [ormsgpack.unpackb(payload) for payload in decode_frame(raw)]


@pytest.fixture(scope="module")
def tasks() -> TdlPackage:
    return load_package(PACKAGES_DIR, "integration_test_tasks")


@pytest.fixture(scope="module")
def complex_tasks() -> TdlPackage:
    return load_package(PACKAGES_DIR, "complex")


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    yield
    close_registry(root_module(__name__))


def test_fibonacci_matches_upstream_bytes(tasks: TdlPackage) -> None:
    # docs/upstream.md#task-data-formats: inputs [10] = 01000000 01000000 0a; outputs [55] = ... 37.
    raw_inputs = bytes.fromhex("01000000 01000000 0a")
    assert tasks.execute("fibonacci", index_ctx(), raw_inputs) == bytes.fromhex(
        "01000000 01000000 37"
    )


def test_two_inputs_and_list_of_str(tasks: TdlPackage) -> None:
    assert outputs(tasks.execute("add", index_ctx(), frame(40, 2))) == [42]
    assert outputs(tasks.execute("sleep_and_echo", index_ctx(), frame(["a", "β"]))) == [["a", "β"]]


def test_bytes_from_rust_arrive_as_int_arrays(tasks: TdlPackage) -> None:
    raw = tasks.execute("echo_bytes", index_ctx(), frame([1, 2, 255]))
    assert outputs(raw) == [b"\x01\x02\xff"]
    assert outputs(tasks.execute("produce_bytes", index_ctx(), frame(3))) == [b"\x00\x01\x02"]


def test_multi_output_tuple_and_context_argument() -> None:
    @task
    def split(ctx: TaskContext, value: int) -> tuple[int, int, int]:
        return value // 10, value % 10, ctx.task_instance_id

    raw = definition_of(split).execute(index_ctx(), frame(47))
    assert outputs(raw) == [4, 7, 1]


def test_zero_outputs_give_the_empty_frame() -> None:
    @task
    def nothing(value: bytes) -> None:
        pass

    assert definition_of(nothing).execute(index_ctx(), frame(b"x")) == EMPTY_FRAME


def test_wrong_input_count_is_a_deserialization_error(tasks: TdlPackage) -> None:
    with pytest.raises(
        TdlDeserializationError,
        match="task 'add': inputs: invalid wire frame: expected 2 payloads, got 1",
    ) as caught:
        tasks.execute("add", index_ctx(), frame(1))
    assert caught.value.kind == "deserialization"


def test_wrong_input_type_names_task_parameter_and_position(tasks: TdlPackage) -> None:
    with pytest.raises(TdlDeserializationError) as caught:
        tasks.execute("add", index_ctx(), frame(1, "two"))
    assert str(caught.value) == "task 'add', input 'b' (position 1): expected int64, got str 'two'"


@pytest.mark.parametrize("raw_ctx", [b"", b"\x93\x01\x02\x03", b"\xc1", commit_ctx([1])[:-3]])
def test_corrupt_context_is_a_deserialization_error(tasks: TdlPackage, raw_ctx: bytes) -> None:
    with pytest.raises(
        TdlDeserializationError, match=r"task 'add': .*TaskContext|task 'add': invalid"
    ):
        tasks.execute("add", raw_ctx, frame(1, 2))


def test_corrupt_input_frame(tasks: TdlPackage) -> None:
    with pytest.raises(TdlDeserializationError, match="too small for the payload count header"):
        tasks.execute("fibonacci", index_ctx(), b"\x01")
    with pytest.raises(TdlDeserializationError, match="not a valid msgpack value"):
        tasks.execute("fibonacci", index_ctx(), encode_frame([b"\xc1"]))


def test_user_exception_keeps_type_message_and_traceback(tasks: TdlPackage) -> None:
    with pytest.raises(TaskExecutionError) as caught:
        tasks.execute("always_fail", index_ctx(), EMPTY_FRAME)
    error = caught.value
    assert error.kind == "execution"
    assert error.exc_type == "ValueError"
    assert error.message == "always_fail: intentional failure"
    assert str(error) == "ValueError: always_fail: intentional failure"
    assert error.traceback.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError("always_fail: intentional failure")' in error.traceback
    # The report starts at the task: the TDL's own frames are not the author's concern.
    assert "spider/tdl" not in error.traceback
    assert isinstance(error.__cause__, ValueError)


def test_package_defined_exception_type_and_empty_message(complex_tasks: TdlPackage) -> None:
    with pytest.raises(TaskExecutionError) as caught:
        complex_tasks.execute("complex::always_fail", index_ctx(), EMPTY_FRAME)
    assert caught.value.exc_type == "ComplexError"

    @task
    def bare() -> None:
        raise KeyError

    with pytest.raises(TaskExecutionError) as bare_error:
        definition_of(bare).execute(index_ctx(), EMPTY_FRAME)
    assert str(bare_error.value) == "KeyError"


def test_complex_tasks_compute_on_structs(complex_tasks: TdlPackage) -> None:
    a = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    b = [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    assert outputs(
        complex_tasks.execute("complex::add", index_ctx(), frame([1.0, 2.0], [3.0, 4.0]))
    ) == [[4.0, 6.0]]
    assert outputs(
        complex_tasks.execute("complex::sub", index_ctx(), frame([1.0, 2.0], [3.0, 4.0]))
    ) == [[-2.0, -2.0]]
    # dot = 1*i + i*1 + 0 = 2i
    assert outputs(complex_tasks.execute("complex::dot_product", index_ctx(), frame([a], [b]))) == [
        [0.0, 2.0]
    ]
    # cross = (a2*b3 - a3*b2, a3*b1 - a1*b3, a1*b2 - a2*b1) = (-2, 2i, 1 + 1) with i*i = -1
    crossed = outputs(complex_tasks.execute("complex::cross_product", index_ctx(), frame([a], [b])))
    assert crossed == [[[[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]]]
    with pytest.raises(TaskExecutionError, match="ComplexError: cross product needs two 3-vectors"):
        complex_tasks.execute("complex::cross_product", index_ctx(), frame([a[:2]], [b]))


def test_wrong_return_values_are_serialization_errors() -> None:
    @task
    def wrong_type() -> int:
        return "7"  # type: ignore[return-value]

    @task
    def not_a_tuple() -> tuple[int, int]:
        return [1, 2]  # type: ignore[return-value]

    @task
    def short_tuple() -> tuple[int, int]:
        return (1,)  # type: ignore[return-value]

    @task
    def unexpected_value() -> None:
        return 5  # type: ignore[return-value]

    cases = [
        (wrong_type, "task 'wrong_type', output 0: expected int64, got str '7'"),
        (
            not_a_tuple,
            "task 'not_a_tuple' must return a tuple of 2 outputs, got an array of 2 items",
        ),
        (
            short_tuple,
            "task 'short_tuple' must return a tuple of 2 outputs, got an array of 1 items",
        ),
        (
            unexpected_value,
            "task 'unexpected_value' declares no outputs (`-> None`) but returned int 5",
        ),
    ]
    for function, message in cases:
        with pytest.raises(TdlSerializationError) as caught:
            definition_of(function).execute(index_ctx(), EMPTY_FRAME)
        assert str(caught.value) == message
        assert caught.value.kind == "serialization"


def test_unknown_task_lists_what_the_package_has(
    tasks: TdlPackage, complex_tasks: TdlPackage
) -> None:
    with pytest.raises(TaskNotFound) as caught:
        complex_tasks.execute("complex::mul", index_ctx(), EMPTY_FRAME)
    assert str(caught.value) == (
        "task 'complex::mul' not found in TDL package 'complex'; it registers complex::add, "
        "complex::always_fail, complex::cross_product, complex::dot_product, complex::sub"
    )
    assert caught.value.kind == "task_not_found"
    with pytest.raises(TaskNotFound, match=r"it registers add, always_abort, .*\(and 3 more\)$"):
        tasks.execute("missing", index_ctx(), EMPTY_FRAME)


@pytest.mark.parametrize(
    ("job_outputs", "message"),
    [
        ([1, 2, 3], "outputs do not sum to zero: got 6"),
        ([], "task-graph outputs empty"),
        ([1, "x"], "job output 1: expected int64, got str 'x'"),
    ],
)
def test_commit_task_reads_the_job_outputs(
    tasks: TdlPackage, job_outputs: list[Any], message: str
) -> None:
    assert (
        tasks.execute("assert_outputs_sum_zero", commit_ctx([3, -1, -2]), EMPTY_FRAME)
        == EMPTY_FRAME
    )
    with pytest.raises(TaskExecutionError) as caught:
        tasks.execute("assert_outputs_sum_zero", commit_ctx(job_outputs), EMPTY_FRAME)
    assert message in str(caught.value)


def test_commit_task_refuses_to_run_as_a_regular_task(tasks: TdlPackage) -> None:
    with pytest.raises(TaskExecutionError, match="must run as a commit task"):
        tasks.execute("assert_outputs_sum_zero", index_ctx(), EMPTY_FRAME)


def test_cleanup_task_takes_an_empty_frame(
    tasks: TdlPackage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tasks.execute("cleanup_marker", cleanup_ctx(), EMPTY_FRAME) == EMPTY_FRAME
    assert "cleanup_marker: job 42 (Cleanup)" in capsys.readouterr().err


def test_write_stderr_writes_what_it_reports(
    tasks: TdlPackage, capfd: pytest.CaptureFixture[str]
) -> None:
    assert outputs(tasks.execute("write_stderr", index_ctx(), frame(2, 5, False))) == [12]
    assert capfd.readouterr().err == "xxxxx\nxxxxx\n"


def test_every_error_kind_is_distinct() -> None:
    kinds = [
        cls.kind
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, TdlError) and cls is not TdlError
    ]
    assert len(kinds) == len(set(kinds))
    assert {
        "task_not_found",
        "deserialization",
        "serialization",
        "execution",
        "package_init",
        "package_not_found",
        "invalid_package_name",
    } <= set(kinds)


@attrs.frozen
class Pair:
    left: int
    right: int


def test_tasks_stay_plain_functions() -> None:
    @task(name="pairs::swap")
    def swap(pair: Pair) -> Pair:
        return Pair(pair.right, pair.left)

    assert swap(Pair(1, 2)) == Pair(2, 1)
    assert outputs(definition_of(swap).execute(index_ctx(), frame([1, 2]))) == [[2, 1]]
