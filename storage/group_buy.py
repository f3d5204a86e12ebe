"""core.group_buy.GroupBuyRepo over the tables group_buys and group_buy_members (migration 0023_group_buy), bound to
the unit of work's connection (`uow.group_buys`, storage/db.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, exists, func, select, update

from core.group_buy import FAILED, OPEN, PAID, Group, Member
from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo

g_ = t.group_buys.c
m_ = t.group_buy_members.c
SEATED = ("held", "paid", "delivered")  # members that take a seat
PAID_STATES = ("paid", "delivered")


def _group(r: Row[Any]) -> Group:
    return Group(r.id, r.product_id, Buyer(r.opener_channel, r.opener_id), r.size, r.price, r.stars, r.opened_at,
                 r.deadline, r.status, r.closed_at)


class GroupBuyRepo(SqlRepo):
    """Implements core.group_buy.GroupBuyRepo."""

    async def _counted(self, groups: dict[str, Group]) -> dict[str, Group]:
        if groups:
            rows = await self.c.execute(select(m_.group_id, m_.state, func.count()).where(
                m_.group_id.in_(sorted(groups))).group_by(m_.group_id, m_.state))
            for gid, state, n in rows:
                g = groups[gid]
                if state in SEATED:
                    g.seats += n
                if state in PAID_STATES:
                    g.paid += n
        return groups

    async def lock(self, ids: Sequence[str]) -> dict[str, Group]:
        if not ids:
            return {}
        q = select(t.group_buys).where(g_.id.in_(sorted(ids))).order_by(g_.id)
        if self.pg:
            q = q.with_for_update()
        return await self._counted({r.id: _group(r) for r in await self.c.execute(q)})

    async def lock_free(self, group_id: str) -> Group | None:
        q = select(t.group_buys).where(g_.id == group_id)
        if self.pg:
            q = q.with_for_update(skip_locked=True)
        r = (await self.c.execute(q)).first()
        return (await self._counted({r.id: _group(r)}))[r.id] if r else None

    async def get(self, group_id: str) -> Group | None:
        r = (await self.c.execute(select(t.group_buys).where(g_.id == group_id))).first()
        return (await self._counted({r.id: _group(r)}))[r.id] if r else None

    async def add(self, groups: Sequence[Group]) -> None:
        await self.c.execute(t.group_buys.insert(), [
            {"id": g.id, "product_id": g.product_id, "opener_channel": g.opener.channel,
             "opener_id": g.opener.external_id, "size": g.size, "price": g.price, "stars": g.stars,
             "opened_at": g.opened_at, "deadline": g.deadline, "status": g.status, "closed_at": g.closed_at}
            for g in groups])

    async def add_members(self, members: Sequence[Member]) -> None:
        await self.c.execute(t.group_buy_members.insert(), [
            {"order_id": m.order_id, "group_id": m.group_id, "buyer_channel": m.buyer.channel,
             "buyer_id": m.buyer.external_id, "state": m.state, "joined_at": m.joined_at} for m in members])

    async def members(self, group_ids: Sequence[str], states: Sequence[str] = ()) -> list[Member]:
        if not group_ids:
            return []
        q = select(t.group_buy_members).where(m_.group_id.in_(sorted(group_ids)))
        if states:
            q = q.where(m_.state.in_(list(states)))
        rows = await self.c.execute(q.order_by(m_.joined_at, m_.order_id))
        return [Member(r.order_id, r.group_id, Buyer(r.buyer_channel, r.buyer_id), r.state, r.joined_at) for r in rows]

    async def set_state(self, order_ids: Sequence[str], state: str) -> None:
        if order_ids:
            await self.c.execute(update(t.group_buy_members).where(m_.order_id.in_(list(order_ids)))
                                 .values(state=state))

    async def close(self, group_id: str, status: str, at: datetime) -> None:
        await self.c.execute(update(t.group_buys).where(g_.id == group_id).values(status=status, closed_at=at))

    async def due(self, now: datetime, limit: int) -> list[str]:
        late_paid = exists().where(and_(m_.group_id == g_.id, m_.state == PAID))
        q = select(g_.id).where((and_(g_.status == OPEN, g_.deadline <= now)) | (and_(g_.status == FAILED, late_paid)))
        return list((await self.c.execute(q.order_by(g_.deadline).limit(limit))).scalars())
