"""A period's sales aggregates (`uow.reports`, core/reports/): each figure is one GROUP BY in the database over
the orders paid in the period, never a loop over orders here.

Every query filters on `paid_at` alone (index ix_orders_paid; only a paid order has one) and tells the statuses
apart in its groups: a status filter in WHERE would let the planner pick ix_orders_status_created and read every
order of those statuses. The daily series is one query: PostgreSQL turns each `paid_at` into the zone's date
itself; SQLite, which knows no zones, shifts by the zone's UTC offset over each stretch of the period where that
offset holds (one stretch, or a few around daylight-saving changes).

Group-chat orders are found from their quotes (`group_orders`, a small table) by id, never by joining every order
of the period to it. The funnel's counters (`report_events`, migration 0014) are one row per day, product, channel
and kind, added to by an upsert (core/reports/events.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Column, Date, Integer, String, Table, and_, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.reports import EventCount, OrderLine, SalesRow
from core.reports.figures import PAID, REFUNDED
from storage import tables as t
from storage.base import OFF_LOOP, SqlRepo
from storage.groups import group_orders
from storage.resellers import resellers
from storage.tables import metadata

KEPT = tuple(s for s in PAID if s not in REFUNDED)
IDS_PER_QUERY = 500  # order ids in one IN (...)
API_PAID_WITHIN = timedelta(days=1)  # a B2B order is paid when it is made (a margin for the clock's edges)
GROUP_QUOTE_AHEAD = timedelta(days=1, hours=1)  # a quote is confirmed within a day (confirm_minutes <= 1440)

# The funnel's counters: views and invoices per day (of the store's zone), product and channel (0014_report_events).
report_events = Table(
    "report_events", metadata,
    Column("day", Date, primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
E = report_events.c


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
            .group_by(o.product_id, p.sku, o.currency, o.buyer_channel, o.status).prefix_with(OFF_LOOP))
        return [SalesRow(int(pid), sku, cur, ch, st, int(n), int(units or 0), int(amount or 0))
                for pid, sku, cur, ch, st, n, units, amount in rows if st in PAID]

    async def api_sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        """By reseller: each reseller's orders (buyer `api:<id>`) through the buyer's index, paid in the period (and
        made shortly before: a B2B order is paid when it is made), so the cost follows the resellers' own orders,
        not every order of the period."""
        ids = [str(rid) for rid in (await self.c.execute(select(resellers.c.id))).scalars()]
        if not ids:
            return []
        o = t.orders.c
        p = t.products.c
        rows = await self.c.execute(
            select(o.product_id, p.sku, o.currency, o.status, o.buyer_id, func.count(), func.sum(o.qty),
                   func.sum(o.amount))
            .select_from(t.orders.join(t.products, p.id == o.product_id))
            .where(and_(o.buyer_channel == "api", o.buyer_id.in_(ids), o.created_at >= start - API_PAID_WITHIN,
                        o.created_at < end, o.paid_at >= start, o.paid_at < end))
            .group_by(o.product_id, p.sku, o.currency, o.status, o.buyer_id).prefix_with(OFF_LOOP))
        return [SalesRow(int(pid), sku, cur, "api", st, int(n), int(units or 0), int(amount or 0), int(rid))
                for pid, sku, cur, st, rid, n, units, amount in rows if st in PAID]

    async def _group_ids(self, start: datetime, end: datetime) -> dict[str, int]:
        """Order id -> reseller, for the group-chat quotes made in time to be paid in [start, end)."""
        g = group_orders.c
        rows = await self.c.execute(select(g.order_id, g.reseller_id).where(
            and_(g.order_id.is_not(None), g.created_at >= start - GROUP_QUOTE_AHEAD, g.created_at < end)))
        return {oid: int(rid) for oid, rid in rows}

    async def group_sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        ids = await self._group_ids(start, end)
        o = t.orders.c
        p = t.products.c
        out: dict[tuple[int, str, str, str, str, int], list[int]] = {}
        chunk_ids = sorted(ids)
        for i in range(0, len(chunk_ids), IDS_PER_QUERY):
            # By id alone, the period checked here: with the range in SQL too, PostgreSQL's generic plan for this
            # prepared statement reads the period's index instead of 500 primary keys (1 s on the bench).
            rows = await self.c.execute(
                select(o.id, o.product_id, p.sku, o.currency, o.buyer_channel, o.status, o.qty, o.amount, o.paid_at)
                .select_from(t.orders.join(t.products, p.id == o.product_id))
                .where(o.id.in_(chunk_ids[i:i + IDS_PER_QUERY])).prefix_with(OFF_LOOP))
            for oid, pid, sku, cur, ch, st, qty, amount, paid in rows:
                if st in PAID and paid is not None and start <= paid < end:
                    into = out.setdefault((int(pid), sku, cur, ch, st, ids[oid]), [0, 0, 0])
                    into[0] += 1
                    into[1] += int(qty)
                    into[2] += int(amount)
        return [SalesRow(pid, sku, cur, ch, st, n, units, amount, rid)
                for (pid, sku, cur, ch, st, rid), (n, units, amount) in sorted(out.items())]

    async def buyers(self, start: datetime, end: datetime) -> tuple[int, int]:
        o = t.orders.c
        per = (select(func.sum(case((o.status.in_(PAID), 1), else_=0)).label("n"))
               .where(and_(o.paid_at >= start, o.paid_at < end))
               .group_by(o.buyer_channel, o.buyer_id).subquery())
        n = per.c.n
        row = (await self.c.execute(select(func.coalesce(func.sum(case((n >= 1, 1), else_=0)), 0),
                                           func.coalesce(func.sum(case((n >= 2, 1), else_=0)), 0))
                                    .select_from(per).prefix_with(OFF_LOOP))).one()
        return int(row[0]), int(row[1])

    async def revenue(self, start: datetime, end: datetime) -> dict[str, int]:
        o = t.orders.c
        rows = await self.c.execute(
            select(o.currency, func.sum(case((o.status.in_(KEPT), o.amount), else_=0)))
            .where(and_(o.paid_at >= start, o.paid_at < end))
            .group_by(o.currency).prefix_with(OFF_LOOP))
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
                                        .where(and_(o.paid_at >= a, o.paid_at < b)).group_by(day, o.currency)
                                        .prefix_with(OFF_LOOP))
            for d, cur, amount in rows:
                if amount:
                    key = d if isinstance(d, date) else date.fromisoformat(str(d))
                    into = out.setdefault(key, {})
                    into[cur] = into.get(cur, 0) + int(amount)
        return out

    # -- the funnel's counters ---------------------------------------------------------------------------------------
    async def add_events(self, counts: Sequence[EventCount]) -> None:
        if not counts:
            return
        ins = (pg_insert if self.pg else sqlite_insert)(report_events)
        await self.c.execute(
            ins.on_conflict_do_update(index_elements=["day", "product_id", "channel", "kind"],
                                      set_={"n": E.n + ins.excluded.n}),
            [{"day": e.day, "product_id": e.product_id, "channel": e.channel, "kind": e.kind, "n": e.n}
             for e in counts])

    async def events(self, first: date, last: date) -> list[EventCount]:
        rows = await self.c.execute(
            select(E.product_id, E.channel, E.kind, func.sum(E.n))
            .where(and_(E.day >= first, E.day <= last)).group_by(E.product_id, E.channel, E.kind))
        return [EventCount(first, int(pid), ch, kind, int(n or 0)) for pid, ch, kind, n in rows]

    # -- costs, resellers ----------------------------------------------------------------------------------------
    async def purchases(self, since: datetime, until: datetime) -> dict[tuple[str, str], tuple[int, int]]:
        s = t.supply_requests.c
        rows = await self.c.execute(
            select(s.supplier, s.supplier_sku, func.sum(s.qty), func.sum(s.cost))
            .where(and_(s.order_id.is_(None), s.kind == "buy", s.status == "done", s.updated_at >= since,
                        s.updated_at < until))
            .group_by(s.supplier, s.supplier_sku))
        return {(sup, sku): (int(qty or 0), int(cost or 0)) for sup, sku, qty, cost in rows}

    async def reseller_names(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        r = resellers.c
        rows = await self.c.execute(select(r.id, r.name).where(r.id.in_(list(ids))))
        return {int(rid): name for rid, name in rows}

    # -- the export ------------------------------------------------------------------------------------------------
    async def orders(self, start: datetime, end: datetime, limit: int) -> list[OrderLine]:
        o = t.orders.c
        p = t.products.c
        rows = (await self.c.execute(
            select(o.id, o.created_at, o.paid_at, o.delivered_at, o.status, o.buyer_channel, o.buyer_id, p.sku,
                   o.qty, o.unit_price, o.amount, o.currency)
            .select_from(t.orders.join(t.products, p.id == o.product_id))
            .where(and_(o.paid_at >= start, o.paid_at < end))
            .order_by(o.paid_at, o.id).limit(limit).prefix_with(OFF_LOOP))).all()
        groups = await self._group_ids(start, end) if rows else {}
        return [OrderLine(oid, created, paid, delivered, st, "group" if oid in groups else ch, f"{ch}:{who}", sku,
                          int(qty), int(unit), int(amount), cur)
                for oid, created, paid, delivered, st, ch, who, sku, qty, unit, amount, cur in rows if st in PAID]
