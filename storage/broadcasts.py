"""Broadcasts and opt-outs (`uow.broadcasts`, core/broadcast.py), and WeChat buyers' last message."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.broadcast import Broadcast, Recipient, Segment
from storage import tables as t
from storage.base import OFF_LOOP, SqlRepo


class BroadcastRepo(SqlRepo):
    async def recipients(self, segment: Segment, product_id: int | None, wechat_since: datetime,
                         wechat_all: bool = False) -> list[Recipient]:
        c = t.customers.c
        o = t.news_optouts.c
        conds: list[Any] = [~exists().where(o.channel == c.channel, o.external_id == c.external_id)]
        if wechat_all:
            conds.append(c.channel.in_(("telegram", "wechat")))
        else:
            conds.append(or_(c.channel == "telegram",
                             and_(c.channel == "wechat", c.last_message_at >= wechat_since)))
        if segment.channel:
            conds.append(c.channel == segment.channel)
        if segment.lang:
            conds.append(c.language == segment.lang)
        if segment.level is not None:
            conds.append(c.level >= segment.level)
        if product_id is not None:
            od = t.orders.c
            conds.append(exists().where(od.buyer_channel == c.channel, od.buyer_id == c.external_id,
                                        od.product_id == product_id, od.status == "delivered"))
        rows = await self.c.execute(select(c.channel, c.external_id, c.language, c.last_message_at).where(*conds)
                                    .order_by(c.channel, c.external_id).prefix_with(OFF_LOOP))
        return [Recipient(r.channel, r.external_id, r.language,
                          r.channel != "wechat" or (r.last_message_at is not None
                                                    and r.last_message_at >= wechat_since))
                for r in rows]

    async def add(self, merchant: str, text: str, segment: dict[str, str], counts: dict[str, int], at: datetime
                  ) -> int:
        res = await self.c.execute(t.broadcasts.insert().values(
            merchant=merchant, text=text, segment=segment, counts=counts, created_at=at, state="draft"
        ).returning(t.broadcasts.c.id))
        return int(res.scalar_one())

    async def get(self, broadcast_id: int, *, for_update: bool = False) -> Broadcast | None:
        q = select(t.broadcasts).where(t.broadcasts.c.id == broadcast_id)
        if for_update and self.pg:
            q = q.with_for_update()
        r = (await self.c.execute(q)).first()
        if r is None:
            return None
        seg = r.segment or {}
        level = seg.get("level")
        segment = Segment(seg.get("lang"), seg.get("channel"), seg.get("bought"), int(level) if level else None)
        return Broadcast(r.id, r.merchant, r.text, segment, r.state, dict(r.counts or {}))

    async def set_state(self, broadcast_id: int, state: str, counts: dict[str, int]) -> None:
        await self.c.execute(update(t.broadcasts).where(t.broadcasts.c.id == broadcast_id)
                             .values(state=state, counts=counts))

    async def opt_out(self, channel: str, external_id: str, out: bool, at: datetime) -> None:
        o = t.news_optouts
        if not out:
            await self.c.execute(delete(o).where(o.c.channel == channel, o.c.external_id == external_id))
            return
        ins = (pg_insert if self.pg else sqlite_insert)(o).values(channel=channel, external_id=external_id, at=at)
        await self.c.execute(ins.on_conflict_do_nothing(index_elements=["channel", "external_id"]))

    async def opted_out(self, channel: str, external_id: str) -> bool:
        o = t.news_optouts.c
        return (await self.c.execute(select(o.at).where(o.channel == channel, o.external_id == external_id))
                ).first() is not None

    async def seen(self, channel: str, external_id: str, at: datetime) -> bool:
        c = t.customers.c
        res = await self.c.execute(update(t.customers).where(c.channel == channel, c.external_id == external_id)
                                   .values(last_message_at=at))
        return bool(res.rowcount)
