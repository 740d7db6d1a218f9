"""``map_exceptions``: translate foreign errors at a boundary, once, in one ``with`` block.

The model is httpcore's ``map_exceptions``: a mapping from the exception types a block may
raise to what each becomes. The first entry whose type matches wins (put specific types before
general ones); the new error is raised ``from`` the original, and an error no entry matches
passes through unchanged.

Synopsis::

    with map_exceptions({RpcError: lambda error: storage_error(error, "ReportTaskSuccess")}):
        await channel.call(...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import attrs

ExceptionMap = Mapping[type[Exception], Callable[[Any], Exception]]
"""Caught exception type -> a callable (an exception class, or a function) that builds what is
raised instead from the caught exception."""


@attrs.frozen
class map_exceptions:  # noqa: N801 -- used like a function: ``with map_exceptions({...}):``
    """A context manager raising ``mapping[type(error)](error) from error`` for an ``error``
    leaving its block; see the module docstring."""

    mapping: ExceptionMap

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(error, Exception):
            return
        for caught, translate in self.mapping.items():
            if isinstance(error, caught):
                raise translate(error) from error
