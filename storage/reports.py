"""A period's sales aggregates (`uow.reports`, core/reports/): each figure is one GROUP BY in the database over
the orders paid in the period (index ix_orders_paid), never a loop over orders here."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select

from core.reports import SalesRow
from core.reports.figures import PAID, REFUNDED
from storage import tables as t
from storage.base import SqlRepo


class SqlReportRepo(SqlRepo):
    async def sales(self, start: datetime, end: datetime) -> list[SalesRow]:
        o = t.orders.c
        p = t.products.c
        rows = await self.c.execute(
            select(o.product_id, p.sku, o.currency, o.buyer_channel, o.status,
                   func.count(), func.sum(o.qty), func.sum(o.amount))
            .select_from(t.orders.join(t.products, p.id == o.product_id))
            .where(and_(o.paid_at >= start, o.paid_at < end, o.status.in_(PAID)))
            .group_by(o.product_id, p.sku, o.currency, o.buyer_channel, o.status))
        return [SalesRow(int(pid), sku, cur, ch, st, int(n), int(units or 0), int(amount or 0))
                for pid, sku, cur, ch, st, n, units, amount in rows]

    async def buyers(self, start: datetime, end: datetime) -> tuple[int, int]:
        o = t.orders.c
        per = (select(func.count().label("n"))
               .where(and_(o.paid_at >= start, o.paid_at < end, o.status.in_(PAID)))
               .group_by(o.buyer_channel, o.buyer_id).subquery())
        n = per.c.n
        row = (await self.c.execute(select(func.count(), func.coalesce(func.sum(case((n >= 2, 1), else_=0)), 0))
                                    .select_from(per))).one()
        return int(row[0]), int(row[1])

    async def revenue(self, start: datetime, end: datetime) -> dict[str, int]:
        o = t.orders.c
        rows = await self.c.execute(
            select(o.currency, func.sum(o.amount))
            .where(and_(o.paid_at >= start, o.paid_at < end, o.status.in_(PAID), o.status.not_in(REFUNDED)))
            .group_by(o.currency))
        return {cur: int(amount or 0) for cur, amount in rows}
