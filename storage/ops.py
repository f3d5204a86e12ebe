"""What the health checks and `/metrics` read from the database at scrape time (bots/ops.py): a ping, orders by
state, the outbox's backlog. Each is one indexed statement on a reader connection:
- orders by state: `GROUP BY status` over `ix_orders_status_expiry` (status first: an index-only scan);
- the backlog: pending rows due now, a range of `ix_outbox_due` (status, next_attempt_at); its lag is how long
  the first of them has been due (the range's first entry). Rows being sent are leased into the future, so they
  are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from storage import tables as t


@dataclass(frozen=True, slots=True)
class Backlog:
    """Outbox rows due and unsent, and since when the oldest of them is due (None: none due)."""

    due: int
    oldest_due: datetime | None


class OpsQueries:
    def __init__(self, db: Any) -> None:  # storage.db.Database
        self.db = db

    async def ping(self) -> None:
        """`SELECT 1` on a reader connection (raises when the database does not answer)."""
        async with self.db.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def orders_by_status(self) -> dict[str, int]:
        c = t.orders.c
        async with self.db.read_engine.connect() as conn:
            rows = await conn.execute(select(c.status, func.count()).group_by(c.status))
            return {str(status): int(n) for status, n in rows}

    async def backlog(self, now: datetime) -> Backlog:
        c = t.outbox.c
        async with self.db.read_engine.connect() as conn:
            row = (await conn.execute(select(func.count(), func.min(c.next_attempt_at)).where(
                c.status == "pending", c.next_attempt_at <= now))).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        return Backlog(int(row[0] or 0), oldest)
