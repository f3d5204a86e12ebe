"""A period's sales aggregates (`uow.reports`, core/reports/): each figure is one GROUP BY in the database over
the orders paid in the period, never a loop over orders here.

Every query filters on `paid_at` alone (index ix_orders_paid; only a paid order has one) and tells the statuses
apart in its groups: a status filter in WHERE would let the planner pick ix_orders_status_created and read every
order of those statuses. The daily series is one query: PostgreSQL turns each `paid_at` into the zone's date
itself; SQLite, which knows no zones, shifts by the zone's UTC offset over each stretch of the period where that
offset holds (one stretch, or a few around daylight-saving changes)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, and_, case, cast, func, literal, select

from core.reports import SalesRow
from core.reports.figures import PAID, REFUNDED
from storage import tables as t
from storage.base import SqlRepo

KEPT = tuple(s for s in PAID if s not in REFUNDED)


def offset_stretches(start: datetime, end: datetime, zone: str) -> list[tuple[datetime, datetime, int]]:
    """[start, end) cut where the zone's UTC offset changes: (from, to, offset in minutes), hour by hour."""
    tz = ZoneInfo(zone)
    out: list[tuple[datetime, datetime, int]] = []
    at = start
    step = timedelta(hours=1)
    while at < end:
        off = int((at.astimezone(tz).utcoffset() or timedelta()).total_seconds() // 60)
        if out and out[-1][2] == off:
            out[-1] = (out[-1][0], min(at + step, end), off)
        else:
            out.append((at, min(at + step, end), off))
        at += step
    return out


class SqlReportRepo(SqlRepo):
    async def sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        o = t.orders.c
        p = t.products.c
        rows = await self.c.execute(
            select(o.product_id, p.sku, o.currency, o.buyer_channel, o.status,
                   func.count(), func.sum(o.qty), func.sum(o.amount))
            .select_from(t.orders.join(t.products, p.id == o.product_id))
            .where(and_(o.paid_at >= start, o.paid_at < end))
            .group_by(o.product_id, p.sku, o.currency, o.buyer_channel, o.status))
        return [SalesRow(int(pid), sku, cur, ch, st, int(n), int(units or 0), int(amount or 0))
                for pid, sku, cur, ch, st, n, units, amount in rows if st in PAID]

    async def buyers(self, start: datetime, end: datetime) -> tuple[int, int]:
        o = t.orders.c
        per = (select(func.sum(case((o.status.in_(PAID), 1), else_=0)).label("n"))
               .where(and_(o.paid_at >= start, o.paid_at < end))
               .group_by(o.buyer_channel, o.buyer_id).subquery())
        n = per.c.n
        row = (await self.c.execute(select(func.coalesce(func.sum(case((n >= 1, 1), else_=0)), 0),
                                           func.coalesce(func.sum(case((n >= 2, 1), else_=0)), 0))
                                    .select_from(per))).one()
        return int(row[0]), int(row[1])

    async def revenue(self, start: datetime, end: datetime) -> dict[str, int]:
        o = t.orders.c
        rows = await self.c.execute(
            select(o.currency, func.sum(case((o.status.in_(KEPT), o.amount), else_=0)))
            .where(and_(o.paid_at >= start, o.paid_at < end))
            .group_by(o.currency))
        return {cur: int(amount or 0) for cur, amount in rows if amount}

    async def daily(self, start: datetime, end: datetime, zone: str) -> dict[date, dict[str, int]]:
        o = t.orders.c
        kept = func.sum(case((o.status.in_(KEPT), o.amount), else_=0))
        out: dict[date, dict[str, int]] = {}
        if self.pg:
            parts: list[tuple[datetime, datetime, Any]] = [
                (start, end, cast(func.timezone(zone, o.paid_at), Date))]
        else:
            parts = [(a, b, func.date(o.paid_at, literal(f"{off:+d} minutes")))
                     for a, b, off in offset_stretches(start, end, zone)]
        for a, b, day in parts:
            rows = await self.c.execute(select(day, o.currency, kept)
                                        .where(and_(o.paid_at >= a, o.paid_at < b)).group_by(day, o.currency))
            for d, cur, amount in rows:
                if amount:
                    key = d if isinstance(d, date) else date.fromisoformat(str(d))
                    into = out.setdefault(key, {})
                    into[cur] = into.get(cur, 0) + int(amount)
        return out
