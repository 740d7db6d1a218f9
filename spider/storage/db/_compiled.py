"""Hot-path statements, compiled once per database and run as driver SQL.

Building a SQLAlchemy Core statement and executing it costs about 0.15-0.2 ms of CPU per
statement here (statement objects, cache keys, parameter processing), against about 0.03 ms for
the same SQL run on the driver's cursor: measured, it was most of a one-task job's storage
CPU (docs/benchmarks.md, "Storage statements compiled once"). The writes every task or job
makes (insert a job, move its state, record task outputs) are therefore compiled once, by
SQLAlchemy and for the database's own dialect, into SQL text and an ordered list of parameters
with their types' bind processors; each run then only processes its values and executes the
text. SQLAlchemy still writes every statement, so the dialects' differences (placeholders,
``FOR UPDATE``, upserts) stay its business.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


@attrs.frozen
class CompiledStatement:
    """One statement as the dialect's SQL text and how to bind its parameters."""

    sql: str
    names: tuple[str, ...]
    """The bound parameters' names, in the order the dialect's placeholders take them."""
    processors: tuple[_Processor, ...]
    """Each parameter's bind processor (an enum to its value, a time to a datetime), or None."""
    positional: bool

    @classmethod
    def compile(cls, statement: sa.ClauseElement, dialect: sa.Dialect) -> CompiledStatement:
        """``statement``, whose parameters are all ``sa.bindparam``s, compiled for ``dialect``."""
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler), "a DML or SELECT statement compiles to SQL"
        names = tuple(compiled.positiontup or compiled.binds)
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        return cls(str(compiled), names, processors, positional=dialect.positional)

    def execute(self, conn: sa.Connection, values: Mapping[str, object]) -> sa.CursorResult[Any]:
        """Run the statement with ``values`` (one per parameter name) on ``conn``."""
        bound = [
            value if process is None else process(value)
            for value, process in zip(
                (values[name] for name in self.names), self.processors, strict=True
            )
        ]
        if self.positional:
            return conn.exec_driver_sql(self.sql, tuple(bound))
        return conn.exec_driver_sql(self.sql, dict(zip(self.names, bound, strict=True)))


@attrs.define
class CompiledStatements:
    """Statements compiled for one dialect on first use, by key."""

    _dialect: sa.Dialect
    _compiled: dict[Hashable, CompiledStatement] = attrs.field(factory=dict)

    def execute(
        self,
        conn: sa.Connection,
        key: Hashable,
        build: Callable[[], sa.ClauseElement],
        values: Mapping[str, object],
    ) -> sa.CursorResult[Any]:
        """Run the statement ``build()`` returns, compiled the first time ``key`` is seen.

        ``key`` must name everything ``build`` depends on: the same key is the same SQL.
        """
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = CompiledStatement.compile(build(), self._dialect)
            self._compiled[key] = compiled
        return compiled.execute(conn, values)
