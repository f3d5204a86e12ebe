"""core.stock_alerts.StockAlertRepo over the table stock_alerts (migration 0017_stock_alerts), bound to the unit of
work's connection (`uow.stock_alerts`, storage/db.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.models import Buyer
from core.stock_alerts import StockAlert
from storage import tables as t
from storage.base import SqlRepo

s = t.stock_alerts.c


def _mine(product_id: int, buyer: Buyer) -> Any:
    return and_(s.product_id == product_id, s.buyer_channel == buyer.channel, s.buyer_id == buyer.external_id)


class StockAlertRepo(SqlRepo):
    """Implements core.stock_alerts.StockAlertRepo."""

    async def subscribe(self, product_id: int, buyer: Buyer, chat_id: str, language: str, at: datetime) -> bool:
        insert = pg_insert if self.pg else sqlite_insert
        made = await self.c.execute(insert(t.stock_alerts).values(
            product_id=product_id, buyer_channel=buyer.channel, buyer_id=buyer.external_id, chat_id=chat_id,
            language=language, created_at=at).on_conflict_do_nothing(
                index_elements=["product_id", "buyer_channel", "buyer_id"]))
        if made.rowcount:
            return True
        # Told before: waits again, at the back of the line; still waiting: its place is kept.
        again = await self.c.execute(update(t.stock_alerts).where(_mine(product_id, buyer), s.notified_at.is_not(None))
                                     .values(notified_at=None, created_at=at, chat_id=chat_id, language=language))
        return bool(again.rowcount)

    async def unsubscribe(self, product_id: int, buyer: Buyer) -> bool:
        gone = await self.c.execute(delete(t.stock_alerts).where(_mine(product_id, buyer), s.notified_at.is_(None)))
        return bool(gone.rowcount)

    async def is_waiting(self, product_id: int, buyer: Buyer) -> bool:
        return (await self.c.execute(select(s.id).where(_mine(product_id, buyer), s.notified_at.is_(None)))
                ).first() is not None

    async def waiting(self, product_id: int, limit: int, exclude: Sequence[int] = ()) -> list[StockAlert]:
        q = (select(s.id, s.product_id, s.buyer_channel, s.buyer_id, s.chat_id, s.language, s.created_at)
             .where(s.product_id == product_id, s.notified_at.is_(None)).order_by(s.created_at, s.id).limit(limit))
        if exclude:
            q = q.where(s.id.not_in(list(exclude)))
        return [StockAlert(r.id, r.product_id, Buyer(r.buyer_channel, r.buyer_id), r.chat_id, r.language,
                           r.created_at) for r in await self.c.execute(q)]

    async def bought_since(self, alerts: Sequence[StockAlert]) -> set[int]:
        if not alerts:
            return set()
        o = t.orders.c
        paid = exists().where(o.product_id == s.product_id, o.buyer_channel == s.buyer_channel,
                              o.buyer_id == s.buyer_id, o.paid_at.is_not(None), o.paid_at >= s.created_at)
        rows = await self.c.execute(select(s.id).where(s.id.in_([a.id for a in alerts]), paid))
        return {r.id for r in rows}

    async def mark_told(self, alert_id: int, at: datetime) -> bool:
        done = await self.c.execute(update(t.stock_alerts).where(s.id == alert_id, s.notified_at.is_(None))
                                    .values(notified_at=at))
        return done.rowcount == 1

    async def drop(self, ids: Sequence[int]) -> None:
        if ids:
            await self.c.execute(delete(t.stock_alerts).where(s.id.in_(list(ids))))
