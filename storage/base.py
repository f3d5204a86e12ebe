"""What every repository shares: the transaction's connection it is bound to (storage/db.py `SqlUnitOfWork` builds
each one per unit of work), the dialect, the store's clock; and the two conventions the repositories keep: a mark
for statements that scan a whole table, and advisory lock keys (PostgreSQL).

Locks are taken in id (or key) order in every method that takes them: no deadlocks between batches."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Insert, Select, Table, and_, any_, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

# Marks a statement that may read many rows (a scan of the codes table, a report's aggregate): on SQLite it runs in
# the driver's thread, not on the event loop (storage/db.py). A comment, so PostgreSQL ignores it.
OFF_LOOP = "/* off-loop */"

Now = Callable[[], datetime]


class SqlRepo:
    """A repository bound to one transaction's connection."""

    def __init__(self, conn: AsyncConnection, dialect: str, now_fn: Now) -> None:
        self.c = conn
        self.pg = dialect == "postgresql"
        self._now = now_fn

    def among(self, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
        """`column IN values`. On PostgreSQL `column = ANY(:array)`: one statement text for any number of values,
        so it is compiled once and prepared once per connection (an IN list is a new statement, and a new server
        round trip to prepare it, for every length a batch happens to have)."""
        if self.pg:
            return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return column.in_(list(values))

    def where_pairs(self, q: Select[Any], a: ColumnElement[Any], b: ColumnElement[Any],
                    pairs: Iterable[tuple[Any, Any]]) -> Select[Any]:
        """`q` kept to rows whose `(a, b)` is one of `pairs` (a and b columns of one table q reads). On PostgreSQL
        the table is joined to the two arrays unnested together (see `among`): a join, not `IN (SELECT ...)`, which
        the planner may run as a scan of the arrays for every row of the table."""
        pairs = set(pairs)  # each pair once: a pair repeated in the join would count its rows twice
        if self.pg:
            v = func.unnest(bindparam(None, [x for x, _ in pairs], type_=ARRAY(a.type)),
                            bindparam(None, [y for _, y in pairs], type_=ARRAY(b.type))
                            ).table_valued("a", "b").render_derived()
            return q.select_from(v.join(a.table, and_(a == v.c.a, b == v.c.b)))
        return q.where(tuple_(a, b).in_(list(pairs)))


def lock_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def unnest_insert(table: Table, columns: Sequence[str]) -> Insert:
    """PostgreSQL: `INSERT INTO table (columns) SELECT unnest(:u_col), ...`, the rows sent as one array per column
    (`as_arrays`). The same text for any number of rows (prepared once per connection), one statement for the
    server; executemany sends a statement per row, and a multi-row VALUES list is a new statement per row count."""
    return table.insert().from_select(list(columns), select(*(
        func.unnest(bindparam(f"u_{name}", type_=ARRAY(table.c[name].type))) for name in columns)))


def as_arrays(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """The parameters of an `unnest_insert`: one list per column."""
    return {f"u_{name}": [r[name] for r in rows] for name in columns}
