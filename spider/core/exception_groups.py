"""Looking inside the exception groups that Trio's nurseries raise.

A nursery wraps whatever its children raise in a ``BaseExceptionGroup``, nested once per
nursery level. A service usually wants one of two answers from such a group: every error in it
(``leaves``), or its errors provided they are all of one kind it knows how to report
(``leaves_if_only``), re-raising the group untouched otherwise.

Synopsis::

    except BaseExceptionGroup as group:
        failures = leaves_if_only(group, ExecutorSpawnError)
        if failures is None:
            raise
        raise ExecutorsUnavailable(f"the task executors could not start: {failures[0]}") from group
"""

from __future__ import annotations

from typing import TypeVar

_E = TypeVar("_E", bound=BaseException)


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions in ``error`` with every nested group flattened, in order; ``[error]`` if
    it is not a group."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def leaves_if_only(error: BaseException, kind: type[_E] | tuple[type[_E], ...]) -> list[_E] | None:
    """``leaves(error)`` if every one of them is a ``kind`` (a type, or a tuple of types as
    ``isinstance`` takes), else ``None``."""
    found = leaves(error)
    if all(isinstance(leaf, kind) for leaf in found):
        return [leaf for leaf in found if isinstance(leaf, kind)]
    return None
