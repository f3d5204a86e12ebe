"""core.coupons.CouponRepo over the tables coupons, coupon_codes and coupon_uses (migration 0020_coupons), bound to the
unit of work's connection (`uow.coupons`, storage/db.py). A campaign's `used` count changes only by an UPDATE of
its row (a row lock on PostgreSQL), so it stays exact however many transactions add or give back uses."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.coupons import Coupon, CouponUse, Terms
from storage import tables as t
from storage.base import SqlRepo

c = t.coupons.c
cc = t.coupon_codes.c
u = t.coupon_uses.c


def _coupon(r: Any) -> Coupon:
    terms = Terms(r.kind, int(r.value), r.currency, int(r.min_spend), tuple(r.skus or ()), tuple(r.categories or ()),
                  r.starts_at, r.ends_at, r.total_limit, r.per_buyer)
    return Coupon(r.id, r.name, terms, bool(r.single_use), bool(r.active), int(r.used), int(r.codes), r.created_at)


class CouponRepo(SqlRepo):
    """Implements core.coupons.CouponRepo."""

    async def add(self, name: str, terms: Terms, single_use: bool, at: datetime) -> int:
        made = await self.c.execute(t.coupons.insert().values(
            name=name, kind=terms.kind, value=terms.value, currency=terms.currency, min_spend=terms.min_spend,
            skus=list(terms.skus), categories=list(terms.categories), starts_at=terms.starts_at,
            ends_at=terms.ends_at, total_limit=terms.total_limit, per_buyer=terms.per_buyer, single_use=single_use,
            active=True, used=0, codes=0, created_at=at).returning(c.id))
        return int(made.scalar_one())

    async def add_codes(self, coupon_id: int, digests: Sequence[str]) -> int:
        if not digests:
            return 0
        insert = pg_insert if self.pg else sqlite_insert
        await self.c.execute(insert(t.coupon_codes).on_conflict_do_nothing(index_elements=["digest"]),
                             [{"digest": d, "coupon_id": coupon_id} for d in digests])
        before = (await self.c.execute(select(c.codes).where(c.id == coupon_id))).scalar_one()
        # (a driver's rowcount of a many-row insert is not reliable: count what the campaign has now)
        now = (await self.c.execute(select(func.count()).where(cc.coupon_id == coupon_id))).scalar_one()
        await self.c.execute(update(t.coupons).where(c.id == coupon_id).values(codes=now))
        return int(now) - int(before)

    async def find(self, digests: Sequence[str]) -> dict[str, int]:
        if not digests:
            return {}
        rows = await self.c.execute(select(cc.digest, cc.coupon_id).where(cc.digest.in_(list(digests))))
        return {r.digest: int(r.coupon_id) for r in rows}

    async def get(self, ids: Sequence[int], *, for_update: bool = False) -> dict[int, Coupon]:
        if not ids:
            return {}
        q = select(t.coupons).where(c.id.in_(sorted(ids))).order_by(c.id)
        if for_update and self.pg:
            q = q.with_for_update()
        return {r.id: _coupon(r) for r in await self.c.execute(q)}

    async def by_name(self, name: str) -> Coupon | None:
        r = (await self.c.execute(select(t.coupons).where(c.name == name))).first()
        return _coupon(r) if r is not None else None

    async def all(self) -> list[Coupon]:
        return [_coupon(r) for r in await self.c.execute(select(t.coupons).order_by(c.id))]

    async def set_active(self, coupon_id: int, active: bool) -> None:
        await self.c.execute(update(t.coupons).where(c.id == coupon_id).values(active=active))

    async def codes_in_use(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        rows = await self.c.execute(select(u.digest).where(u.digest.in_(list(digests)), u.released_at.is_(None)))
        void = await self.c.execute(select(cc.digest).where(cc.digest.in_(list(digests)), cc.void_at.is_not(None)))
        return {r.digest for r in rows} | {r.digest for r in void}

    async def void_codes(self, digests: Sequence[str], at: datetime) -> None:
        if digests:
            await self.c.execute(update(t.coupon_codes).where(cc.digest.in_(list(digests))).values(void_at=at))

    async def uses_by(self, coupon_ids: Sequence[int], buyers: Sequence[str]) -> dict[tuple[int, str], int]:
        if not coupon_ids or not buyers:
            return {}
        rows = await self.c.execute(
            select(u.coupon_id, u.buyer, func.count()).where(u.coupon_id.in_(list(coupon_ids)),
                                                             u.buyer.in_(list(buyers)), u.released_at.is_(None))
            .group_by(u.coupon_id, u.buyer))
        return {(int(cid), buyer): int(n) for cid, buyer, n in rows}

    async def _count(self, per_coupon: Counter[int], sign: int) -> None:
        for cid, n in sorted(per_coupon.items()):  # in id order: no deadlock between two transactions
            await self.c.execute(update(t.coupons).where(c.id == cid).values(used=c.used + sign * n))

    async def add_uses(self, uses: Sequence[CouponUse], at: datetime) -> None:
        if not uses:
            return
        await self.c.execute(t.coupon_uses.insert(), [
            {"order_id": x.order_id, "coupon_id": x.coupon_id, "digest": x.digest, "buyer": x.buyer,
             "amount_off": x.amount_off, "created_at": at, "released_at": None} for x in uses])
        await self._count(Counter(x.coupon_id for x in uses), 1)

    async def _flip(self, order_ids: Sequence[str], at: datetime | None) -> int:
        live = u.released_at.is_(None) if at is not None else u.released_at.is_not(None)
        rows = list(await self.c.execute(
            update(t.coupon_uses).where(u.order_id.in_(list(order_ids)), live).values(released_at=at)
            .returning(u.coupon_id)))
        await self._count(Counter(int(r.coupon_id) for r in rows), -1 if at is not None else 1)
        return len(rows)

    async def release(self, order_ids: Sequence[str], at: datetime) -> int:
        return await self._flip(order_ids, at) if order_ids else 0

    async def retake(self, order_ids: Sequence[str], at: datetime) -> int:
        return await self._flip(order_ids, None) if order_ids else 0
