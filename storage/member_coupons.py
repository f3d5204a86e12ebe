"""core.members.coupons.MemberCouponRepo over the table member_coupons (migration 0024_member_coupons), bound to the
unit of work's connection (`uow.member_coupons`, storage/db.py). Codes are stored sealed (vault) and as fingerprints,
never in plain text."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_, update

from core.members.coupons import IssuedCoupon
from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo

mc = t.member_coupons.c


def _issued(r: Any) -> IssuedCoupon:
    return IssuedCoupon(r.id, Buyer(r.buyer_channel, r.buyer_id), r.coupon_id, r.digest, r.sealed, r.source, r.ref,
                        r.issued_at, r.order_id, int(r.points), r.voided_at)


class MemberCouponRepo(SqlRepo):
    """Implements core.members.coupons.MemberCouponRepo."""

    async def add(self, issued: IssuedCoupon) -> int:
        made = await self.c.execute(t.member_coupons.insert().values(
            buyer_channel=issued.buyer.channel, buyer_id=issued.buyer.external_id, coupon_id=issued.coupon_id,
            digest=issued.digest, sealed=issued.sealed, source=issued.source, ref=issued.ref,
            order_id=issued.order_id, points=issued.points, issued_at=issued.issued_at).returning(mc.id))
        return int(made.scalar_one())

    async def refs(self, refs: Sequence[str]) -> set[str]:
        if not refs:
            return set()
        return {r.ref for r in await self.c.execute(select(mc.ref).where(mc.ref.in_(list(refs))))}

    async def of_buyers(self, buyers: Sequence[Buyer]) -> list[IssuedCoupon]:
        if not buyers:
            return []
        pairs = sorted({(b.channel, b.external_id) for b in buyers})
        q = select(t.member_coupons).where(tuple_(mc.buyer_channel, mc.buyer_id).in_(pairs)).order_by(mc.id.desc())
        return [_issued(r) for r in await self.c.execute(q)]

    async def of_orders(self, order_ids: Sequence[str]) -> list[IssuedCoupon]:
        if not order_ids:
            return []
        q = select(t.member_coupons).where(mc.order_id.in_(list(order_ids))).order_by(mc.id)
        return [_issued(r) for r in await self.c.execute(q)]

    async def get(self, coupon_row: int) -> IssuedCoupon | None:
        r = (await self.c.execute(select(t.member_coupons).where(mc.id == coupon_row))).first()
        return _issued(r) if r is not None else None

    async def set_voided(self, ids: Sequence[int], at: datetime) -> None:
        if ids:
            await self.c.execute(update(t.member_coupons).where(mc.id.in_(list(ids))).values(voided_at=at))
