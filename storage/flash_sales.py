"""core.flash_sales.FlashSaleRepo over the tables flash_sales and flash_sale_uses (migration 0021_flash_sales), bound
to the unit of work's connection (`uow.flash_sales`, storage/db.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_, update

from core.flash_sales import FlashSale
from core.models import Buyer, Order
from storage import tables as t
from storage.base import SqlRepo

f = t.flash_sales.c
u = t.flash_sale_uses.c


def _sale(r: Any) -> FlashSale:
    return FlashSale(r.id, r.product_id, r.price, r.stars, r.units, r.per_buyer, r.starts_at, r.ends_at, r.sold,
                     r.ended_at, r.source, r.created_by)


def _open(now: datetime) -> Any:
    return and_(f.ends_at > now, or_(f.ended_at.is_(None), f.ended_at > now))


class FlashSaleRepo(SqlRepo):
    """Implements core.flash_sales.FlashSaleRepo."""

    async def add(self, sale: FlashSale, at: datetime) -> FlashSale:
        row = await self.c.execute(t.flash_sales.insert().values(
            product_id=sale.product_id, price=sale.price, stars=sale.stars, units=sale.units,
            per_buyer=sale.per_buyer, starts_at=sale.starts_at, ends_at=sale.ends_at, ended_at=sale.ended_at,
            sold=0, source=sale.source, created_by=sale.created_by, created_at=at).returning(f.id))
        return FlashSale(row.scalar_one(), sale.product_id, sale.price, sale.stars, sale.units, sale.per_buyer,
                         sale.starts_at, sale.ends_at, 0, sale.ended_at, sale.source, sale.created_by)

    async def get(self, sale_id: int) -> FlashSale | None:
        r = (await self.c.execute(select(t.flash_sales).where(f.id == sale_id))).first()
        return _sale(r) if r else None

    async def open_for(self, product_ids: Sequence[int], now: datetime, *, lock: bool = False) -> list[FlashSale]:
        if not product_ids:
            return []
        mine = and_(f.product_id.in_(list(product_ids)), _open(now))
        if lock and self.pg:  # the live sales' rows, in id order: a second batch waits here, then reads `sold` anew
            await self.c.execute(select(f.id).where(mine, f.starts_at <= now).order_by(f.id).with_for_update())
        q = select(t.flash_sales).where(mine)
        rows = await self.c.execute(q.order_by(f.starts_at, f.id))
        return [_sale(r) for r in rows]

    async def open_all(self, now: datetime) -> list[FlashSale]:
        return [_sale(r) for r in await self.c.execute(select(t.flash_sales).where(_open(now)))]

    async def recent(self, now: datetime, limit: int) -> list[FlashSale]:
        rows = await self.c.execute(select(t.flash_sales).where(f.ends_at > now - timedelta(days=7))
                                    .order_by(f.starts_at.desc(), f.id.desc()).limit(limit))
        return [_sale(r) for r in rows]

    async def used(self, sale_ids: Sequence[int], buyers: Sequence[Buyer]) -> dict[tuple[int, str], int]:
        if not sale_ids or not buyers:
            return {}
        rows = await self.c.execute(
            select(u.sale_id, u.buyer_channel, u.buyer_id, func.sum(u.qty).label("n"))
            .where(u.sale_id.in_(list(sale_ids)),
                   tuple_(u.buyer_channel, u.buyer_id).in_([(b.channel, b.external_id) for b in buyers]))
            .group_by(u.sale_id, u.buyer_channel, u.buyer_id))
        return {(r.sale_id, f"{r.buyer_channel}:{r.buyer_id}"): int(r.n) for r in rows}

    async def take(self, uses: Sequence[tuple[int, Order]]) -> None:
        if not uses:
            return
        await self.c.execute(t.flash_sale_uses.insert(), [
            {"order_id": o.id, "sale_id": sid, "buyer_channel": o.buyer.channel, "buyer_id": o.buyer.external_id,
             "qty": o.qty} for sid, o in uses])
        await self._add_sold(_sum((sid, o.qty) for sid, o in uses))

    async def give_back(self, order_ids: Sequence[str]) -> list[tuple[int, int]]:
        if not order_ids:
            return []
        gone = await self.c.execute(delete(t.flash_sale_uses).where(u.order_id.in_(list(order_ids)))
                                    .returning(u.sale_id, u.qty))
        per = _sum((r.sale_id, r.qty) for r in gone)
        await self._add_sold({sid: -n for sid, n in per.items()})
        return sorted(per.items())

    async def with_uses(self, order_ids: Sequence[str]) -> set[str]:
        if not order_ids:
            return set()
        rows = await self.c.execute(select(u.order_id).where(u.order_id.in_(list(order_ids))))
        return {r.order_id for r in rows}

    async def update(self, sale: FlashSale) -> None:
        await self.c.execute(update(t.flash_sales).where(f.id == sale.id).values(
            price=sale.price, stars=sale.stars, units=sale.units, per_buyer=sale.per_buyer, ends_at=sale.ends_at,
            ended_at=sale.ended_at))

    async def by_source(self, prefix: str) -> list[FlashSale]:
        rows = await self.c.execute(select(t.flash_sales).where(f.source.startswith(prefix, autoescape=True))
                                    .order_by(f.id))
        return [_sale(r) for r in rows]

    async def _add_sold(self, per_sale: dict[int, int]) -> None:
        for sid, n in sorted(per_sale.items()):  # in id order, like every lock taken here
            if n:
                await self.c.execute(update(t.flash_sales).where(f.id == sid).values(sold=f.sold + n))


def _sum(pairs: Any) -> dict[int, int]:
    out: dict[int, int] = {}
    for sid, n in pairs:
        out[sid] = out.get(sid, 0) + n
    return out
