"""``leaves`` and ``leaves_if_only`` on nested exception groups built by Hypothesis."""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st

from spider.core.exception_groups import leaves, leaves_if_only


class Known(Exception):
    """The kind of error a service knows how to report."""


class Other(Exception):
    """Anything else."""


def _errors() -> st.SearchStrategy[BaseException]:
    return st.builds(lambda known, n: Known(n) if known else Other(n), st.booleans(), st.integers())


def _flatten(tree: Any) -> list[BaseException]:
    if isinstance(tree, list):
        return [leaf for branch in tree for leaf in _flatten(branch)]
    return [tree]


def _grouped(tree: Any) -> BaseException:
    if isinstance(tree, list):
        return BaseExceptionGroup("nursery", [_grouped(branch) for branch in tree])
    assert isinstance(tree, BaseException)
    return tree


_TREES = st.recursive(_errors(), lambda children: st.lists(children, min_size=1, max_size=4))


@given(_TREES)
def test_leaves_are_the_errors_in_order_with_the_groups_flattened(tree: Any) -> None:
    error = _grouped(tree)

    assert leaves(error) == _flatten(tree)


@given(_TREES)
def test_leaves_if_only_answers_only_when_every_leaf_is_of_the_kind(tree: Any) -> None:
    error = _grouped(tree)
    expected = _flatten(tree)

    found = leaves_if_only(error, Known)

    if all(isinstance(leaf, Known) for leaf in expected):
        assert found == expected
    else:
        assert found is None
    assert leaves_if_only(error, (Known, Other)) == expected


async def test_a_nursery_failure_comes_out_as_its_leaf() -> None:
    async def fail() -> None:
        raise Known("the child")

    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(fail)
    except BaseExceptionGroup as group:
        caught = leaves_if_only(group, Known)
    assert caught is not None
    assert [str(error) for error in caught] == ["the child"]
