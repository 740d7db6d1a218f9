"""``@task`` and ``@on_load``: what they register, and every rule they enforce at import time."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from spider.core import BytesType, DataType, FloatType, IntType, IntWidth, ListType, StructType
from spider.tdl import (
    TaskContext,
    TdlContext,
    TdlDefinitionError,
    definition_of,
    int8,
    on_load,
    task,
)
from spider.tdl._registry import close_registry, root_module


@attrs.frozen
class Point:
    x: int
    y: float


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    yield
    # Tasks defined here belong to this module's package: keep tests from seeing each other's.
    close_registry(root_module(__name__))


def test_task_registers_under_its_function_name_and_stays_callable() -> None:
    @task
    def scale(point: Point, factor: int8) -> list[float]:
        return [point.x * factor, point.y * factor]

    definition = definition_of(scale)
    assert definition.name == "scale"
    assert definition.function is scale
    assert scale(Point(1, 2.5), 2) == [2, 5.0]
    signature = definition.signature
    assert not signature.takes_context
    assert signature.input_names == ("point", "factor")
    assert signature.inputs == (
        DataType(StructType("Point")),
        DataType(IntType(IntWidth.INT8)),
    )
    assert signature.outputs == (DataType(ListType(FloatType())),)
    assert not signature.returns_tuple


def test_name_override_and_package_relative_tdl_context() -> None:
    @task(name="geometry::norm")
    def norm(ctx: TaskContext, point: Point) -> float:
        return float(point.x**2) + point.y**2

    definition = definition_of(norm)
    assert definition.name == "geometry::norm"
    assert definition.signature.takes_context
    assert definition.signature.input_names == ("point",)
    # A function imported directly belongs to the package named like its top-level module.
    assert definition.package == root_module(__name__) == __name__.split(".")[0]
    assert definition.tdl_context == TdlContext(definition.package, "geometry::norm")


def test_return_annotations_give_the_outputs() -> None:
    @task
    def nothing() -> None:
        pass

    @task
    def two() -> tuple[int, bytes]:
        return 1, b""

    @task
    def one_in_a_tuple() -> tuple[int]:
        return (1,)

    @task
    def empty_tuple() -> tuple[()]:
        return ()

    assert definition_of(nothing).signature.outputs == ()
    assert not definition_of(nothing).signature.returns_tuple
    assert definition_of(two).signature.outputs == (DataType(IntType()), DataType(BytesType()))
    assert definition_of(two).signature.returns_tuple
    assert definition_of(one_in_a_tuple).signature.outputs == (DataType(IntType()),)
    assert definition_of(one_in_a_tuple).signature.returns_tuple
    assert definition_of(empty_tuple).signature.outputs == ()
    assert definition_of(empty_tuple).signature.returns_tuple


def test_missing_parameter_annotation_names_the_function_and_parameter() -> None:
    def untyped(a: int, b) -> int:  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(
        TdlDefinitionError,
        match=r"task 'untyped' \(.*untyped\): parameter 'b' has no type annotation",
    ):
        task(untyped)


def test_missing_return_annotation_is_rejected() -> None:
    def no_return(a: int):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(
        TdlDefinitionError, match=r"no_return.* has no return annotation: write `-> None`"
    ):
        task(no_return)


@pytest.mark.parametrize(
    ("annotation", "fragment"),
    [
        (set[int], "not a supported value type"),
        (object, "object is not a supported value type"),
        (Any, "not a supported value type"),
        (list, "bare list"),
        (dict[float, int], "map keys must be int or bytes"),
        (int | str, "only `T | None` unions"),
        (tuple[int, int], "tuples are only allowed as a return annotation"),
        (list[set[int]], "not a supported value type"),
    ],
)
def test_unsupported_input_types_are_rejected(annotation: Any, fragment: str) -> None:
    def bad(value: int) -> None:
        pass

    bad.__annotations__["value"] = annotation
    with pytest.raises(TdlDefinitionError, match=r"task 'bad' .*parameter 'value'") as caught:
        task(bad)
    assert fragment in str(caught.value)


def test_unsupported_output_type_names_the_output() -> None:
    def bad() -> tuple[int, set[int]]:
        return 1, set()

    with pytest.raises(TdlDefinitionError, match=r"task 'bad' .*: output 1: .*not a supported"):
        task(bad)


def test_variadic_output_tuple_is_rejected() -> None:
    def bad() -> tuple[int, ...]:
        return (1,)

    with pytest.raises(TdlDefinitionError, match="has no fixed length"):
        task(bad)


def test_bare_tuple_return_is_rejected() -> None:
    def bare() -> tuple:  # type: ignore[type-arg]
        return ()

    with pytest.raises(TdlDefinitionError, match="a bare `tuple` return needs its item types"):
        task(bare)


def test_context_must_come_first() -> None:
    def late(a: int, ctx: TaskContext) -> None:
        pass

    with pytest.raises(
        TdlDefinitionError, match="parameter 'ctx': a TaskContext must be the first"
    ):
        task(late)


@pytest.mark.parametrize(
    "source",
    [
        "def f(*values: int) -> None: ...",
        "def f(a: int, *, b: int) -> None: ...",
        "def f(**values: int) -> None: ...",
    ],
)
def test_non_positional_parameters_are_rejected(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TdlDefinitionError, match="task inputs are positional parameters"):
        task(namespace["f"])


def test_unresolvable_string_annotation_is_reported() -> None:
    def dangling(value: UndefinedName) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(
        TdlDefinitionError, match="cannot evaluate its annotations: name 'UndefinedName'"
    ):
        task(dangling)


def test_async_and_generator_functions_are_rejected() -> None:
    async def fetch(a: int) -> int:
        return a

    async def stream(a: int) -> AsyncIterator[int]:
        yield a

    def numbers(a: int) -> Iterator[int]:
        yield a

    with pytest.raises(TdlDefinitionError, match=r"fetch is `async def`.*make it a plain `def`"):
        task(fetch)
    with pytest.raises(TdlDefinitionError, match="stream is `async def`"):
        task(stream)
    with pytest.raises(TdlDefinitionError, match="numbers is a generator"):
        task(numbers)


def test_only_plain_functions_can_be_tasks() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TdlDefinitionError, match="applies to plain functions"):
        task(functools.partial(add, 1))


def test_duplicate_names_in_one_package_are_rejected() -> None:
    @task(name="shared")
    def first() -> None:
        pass

    def second() -> None:
        pass

    with pytest.raises(
        TdlDefinitionError, match=r"duplicate task name 'shared' .*first and .*second"
    ):
        task(name="shared")(second)
    assert definition_of(first).function is first


def test_reimporting_the_same_function_replaces_it() -> None:
    def make() -> Any:
        @task(name="reloaded")
        def reloaded() -> int:
            return 1

        return reloaded

    first, again = make(), make()
    assert first is not again
    assert definition_of(again).function is again


def test_task_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(TdlDefinitionError, match="needs a non-empty string"):
        task(name="")


def test_definition_of_rejects_plain_functions() -> None:
    def plain() -> None:
        pass

    with pytest.raises(TdlDefinitionError, match="is not a @task function"):
        definition_of(plain)


def test_on_load_rules() -> None:
    def needs_argument(value: int) -> None:
        pass

    async def asynchronous() -> None:
        pass

    def optional_argument(value: int = 1) -> None:
        pass

    with pytest.raises(TdlDefinitionError, match=r"must take no arguments, it requires 'value'"):
        on_load(needs_argument)  # type: ignore[type-var]
    with pytest.raises(TdlDefinitionError, match="is `async def`"):
        on_load(asynchronous)
    assert on_load(optional_argument) is optional_argument
