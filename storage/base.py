"""What every repository shares: the transaction's connection it is bound to (storage/db.py `SqlUnitOfWork` builds
each one per unit of work), the dialect, the store's clock; and the two conventions the repositories keep: a mark
for statements that scan a whole table, and advisory lock keys (PostgreSQL).

Locks are taken in id (or key) order in every method that takes them: no deadlocks between batches."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

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


def lock_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
