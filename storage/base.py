"""What every repository shares: the transaction's connection it is bound to (storage/db.py `SqlUnitOfWork` builds
each one per unit of work), the dialect, the store's clock; and the two conventions the repositories keep: a mark
for statements that scan a whole table, and advisory lock keys (PostgreSQL).

Locks are taken in id (or key) order in every method that takes them: no deadlocks between batches."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, any_, bindparam, func, tuple_
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


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot go into a JSON row")


_ENCODE_ROWS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_value).encode


def json_insert(table: Table, columns: Sequence[str], returning: Sequence[str] = ()) -> str:
    """PostgreSQL: `INSERT INTO table (columns) SELECT columns FROM json_populate_recordset(NULL::table, $1)`, a
    batch's rows sent as ONE JSON parameter (`json_rows`), each value typed by the table's own column. The same text
    for any number of rows (prepared once per connection), one statement for the server. Cheaper for the process than
    one array per column: asyncpg checks every element of an array in Python (three isinstance checks against
    abstract classes each), and SQLAlchemy runs each element through its type's processor; one JSON text is encoded
    in C. For the driver straight (`exec_driver_sql`); the rows read back are RETURNING's, by position."""
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO {table.name} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{table.name}, $1::json)'
    return sql + (" RETURNING " + ", ".join(f'"{c}"' for c in returning) if returning else "")


def json_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[str]:
    """The parameter of a `json_insert`: the rows as a JSON array of objects (times in ISO 8601 with their zone; a
    key that is not a column is ignored, a column without a key is NULL)."""
    return (_ENCODE_ROWS(rows),)


def lock_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
