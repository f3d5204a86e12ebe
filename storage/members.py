"""core.members.ports.MemberRepo over the tables points_ledger, member_spend and referral_codes (migration
0022_members) and customers.level, bound to the unit of work's connection (`uow.members`, storage/db.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.members.ports import PointsEntry, Spend
from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo

p = t.points_ledger.c
m = t.member_spend.c


def _pairs(buyers: Sequence[Buyer]) -> list[tuple[str, str]]:
    return sorted({(b.channel, b.external_id) for b in buyers})


def _entry(r: Any) -> PointsEntry:
    return PointsEntry(r.id, Buyer(r.buyer_channel, r.buyer_id), r.delta, r.remaining, r.kind, r.ref, r.created_at,
                       r.expires_at, r.order_id, dict(r.detail or {}))


class MemberRepo(SqlRepo):
    """Implements core.members.ports.MemberRepo."""

    async def open_points(self, buyers: Sequence[Buyer], *, lock: bool = False) -> list[PointsEntry]:
        if not buyers:
            return []
        q = (select(t.points_ledger).where(tuple_(p.buyer_channel, p.buyer_id).in_(_pairs(buyers)),
                                           p.remaining != 0).order_by(p.id))
        if lock and self.pg:
            q = q.with_for_update()  # rows in id order: two spenders of one person queue here
        return [_entry(r) for r in await self.c.execute(q)]

    async def add_points(self, entries: Sequence[PointsEntry]) -> None:
        if entries:
            await self.c.execute(t.points_ledger.insert(), [
                {"buyer_channel": e.buyer.channel, "buyer_id": e.buyer.external_id, "delta": e.delta,
                 "remaining": e.left, "kind": e.kind, "ref": e.ref, "order_id": e.order_id,
                 "created_at": e.created_at, "expires_at": e.expires_at, "detail": e.detail} for e in entries])

    async def set_left(self, changes: Sequence[tuple[int, int]]) -> None:
        for row_id, left in sorted(changes):
            await self.c.execute(update(t.points_ledger).where(p.id == row_id).values(remaining=left))

    async def points_refs(self, refs: Sequence[str]) -> dict[str, PointsEntry]:
        if not refs:
            return {}
        rows = await self.c.execute(select(t.points_ledger).where(p.ref.in_(list(refs))))
        return {r.ref: _entry(r) for r in rows}

    async def points_of_orders(self, order_ids: Sequence[str]) -> list[PointsEntry]:
        if not order_ids:
            return []
        rows = await self.c.execute(select(t.points_ledger).where(p.order_id.in_(sorted(set(order_ids))))
                                    .order_by(p.id))
        return [_entry(r) for r in rows]

    async def points_history(self, buyers: Sequence[Buyer], limit: int) -> list[PointsEntry]:
        rows = await self.c.execute(select(t.points_ledger).where(
            tuple_(p.buyer_channel, p.buyer_id).in_(_pairs(buyers))).order_by(p.id.desc()).limit(limit))
        return [_entry(r) for r in rows]

    async def add_spend(self, rows: Sequence[Spend], at: datetime) -> None:
        if not rows:
            return
        insert = pg_insert if self.pg else sqlite_insert
        await self.c.execute(insert(t.member_spend).values([
            {"order_id": s.order_id, "buyer_channel": s.buyer.channel, "buyer_id": s.buyer.external_id,
             "amount": s.amount, "paid_at": at} for s in rows]).on_conflict_do_nothing(index_elements=["order_id"]))

    async def refund_spend(self, order_ids: Sequence[str], at: datetime) -> list[Spend]:
        if not order_ids:
            return []
        rows = await self.c.execute(update(t.member_spend).where(
            m.order_id.in_(sorted(set(order_ids))), m.refunded_at.is_(None)).values(refunded_at=at)
            .returning(m.order_id, m.buyer_channel, m.buyer_id, m.amount))
        return [Spend(r.order_id, Buyer(r.buyer_channel, r.buyer_id), r.amount) for r in rows]

    async def spend_of(self, buyers: Sequence[Buyer]) -> int:
        total = await self.c.scalar(select(func.coalesce(func.sum(m.amount), 0)).where(
            tuple_(m.buyer_channel, m.buyer_id).in_(_pairs(buyers)), m.refunded_at.is_(None)))
        return int(total or 0)

    async def paid_orders(self, buyers: Sequence[Buyer]) -> int:
        n = await self.c.scalar(select(func.count()).select_from(t.member_spend).where(
            tuple_(m.buyer_channel, m.buyer_id).in_(_pairs(buyers))))
        return int(n or 0)

    async def levels(self, buyers: Sequence[Buyer]) -> dict[str, int]:
        if not buyers:
            return {}
        c = t.customers.c
        rows = await self.c.execute(select(c.channel, c.external_id, c.level).where(
            tuple_(c.channel, c.external_id).in_(_pairs(buyers))))
        return {f"{r.channel}:{r.external_id}": int(r.level or 0) for r in rows}

    async def set_levels(self, buyers: Sequence[Buyer], level: int, at: datetime) -> None:
        insert = pg_insert if self.pg else sqlite_insert
        for channel, external_id in _pairs(buyers):
            ins = insert(t.customers).values(channel=channel, external_id=external_id, language=None, state={},
                                             created_at=at, updated_at=at, level=level)
            await self.c.execute(ins.on_conflict_do_update(index_elements=["channel", "external_id"],
                                                           set_={"level": level, "updated_at": at}))

    async def add_referral_code(self, digest: bytes, buyer: Buyer, at: datetime) -> None:
        insert = pg_insert if self.pg else sqlite_insert
        await self.c.execute(insert(t.referral_codes).values(
            digest=digest, channel=buyer.channel, external_id=buyer.external_id, created_at=at
        ).on_conflict_do_nothing())

    async def referral_owner(self, digest: bytes) -> Buyer | None:
        r = (await self.c.execute(select(t.referral_codes.c.channel, t.referral_codes.c.external_id).where(
            t.referral_codes.c.digest == digest))).first()
        return Buyer(r.channel, r.external_id) if r is not None else None


