"""core.privacy.PrivacyRepo: what is kept about a person, and erasing it (`uow.privacy`, storage/db.py).

`erase` deletes the purely personal rows, then walks EVERY table of storage/tables.py so that a table added later
is covered without a change here: a column holding a bare account id (buyer_id, external_id, opener_id, chat_id,
recipient, merchant_id; next to its channel column) is set to the anonymous id when it equals an account's id; any
other text column holding an account key (`channel:id`, alone or as the end of a reference such as
`referral:telegram:42`) gets the anonymous key; JSON columns are rewritten value by value the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Table, Text, and_, cast, delete, func, or_, select, update

from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo

# A bare account id, and the column naming its channel in the same table (None: the table has the channel in a
# column named `channel`, or none).
BARE = {"buyer_id": "buyer_channel", "external_id": "channel", "opener_id": "opener_channel",
        "chat_id": "buyer_channel", "recipient": "channel", "merchant_id": "merchant_channel"}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is(table: Table, buyers: Sequence[Buyer], channel: str, ident: str) -> Any:
    cc, ic = table.c[channel], table.c[ident]
    return or_(*(and_(cc == b.channel, ic == b.external_id) for b in buyers))


class _Swap:
    """Old ids and keys → the anonymous ones, exactly (never a part of a longer id)."""

    def __init__(self, buyers: Sequence[Buyer], anonymous: str) -> None:
        self.ids = {b.external_id for b in buyers}
        self.keys = {b.key: f"{b.channel}:{anonymous}" for b in buyers}
        self.anonymous = anonymous

    def text(self, value: str, bare: bool) -> str:
        if bare and value in self.ids:
            return self.anonymous
        if value in self.keys:
            return self.keys[value]
        for old, new in self.keys.items():
            if value.endswith(":" + old):
                return value[: -len(old)] + new
        return value

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value, True)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.json(k): self.json(v) for k, v in value.items()}
        return value


class PrivacyRepo(SqlRepo):
    async def in_flight(self, buyers: Sequence[Buyer], statuses: Sequence[str]) -> int:
        o = t.orders
        return int(await self.c.scalar(select(func.count()).select_from(o).where(
            _is(o, buyers, "buyer_channel", "buyer_id"), o.c.status.in_(list(statuses)))) or 0)

    async def _count(self, table: Table, where: Any) -> int:
        return int(await self.c.scalar(select(func.count()).select_from(table).where(where)) or 0)

    async def kept(self, buyers: Sequence[Buyer]) -> dict[str, int]:
        o, p, pl = t.orders, t.payments, t.points_ledger
        mine = _is(o, buyers, "buyer_channel", "buyer_id")
        points = await self.c.scalar(select(func.coalesce(func.sum(pl.c.remaining), 0)).where(
            _is(pl, buyers, "buyer_channel", "buyer_id"), pl.c.remaining > 0,
            or_(pl.c.expires_at.is_(None), pl.c.expires_at > self._now())))
        return {
            "orders": await self._count(o, mine),
            "payments": await self._count(p, p.c.order_id.in_(select(o.c.id).where(mine))),
            "points": int(points or 0),
            "tickets": await self._count(t.tickets, _is(t.tickets, buyers, "buyer_channel", "buyer_id")),
            "alerts": await self._count(t.stock_alerts, _is(t.stock_alerts, buyers, "buyer_channel", "buyer_id")
                                        & t.stock_alerts.c.notified_at.is_(None)),
            "news_optouts": await self._count(t.news_optouts, _is(t.news_optouts, buyers, "channel", "external_id")),
        }

    async def erase(self, buyers: Sequence[Buyer], anonymous: str, now: datetime) -> dict[str, int]:
        changed: dict[str, int] = {}

        def note(table: Table, n: int) -> None:
            changed[table.name] = changed.get(table.name, 0) + max(n, 0)

        # The purely personal: deleted.
        for table, ch, ident in ((t.customers, "channel", "external_id"), (t.news_optouts, "channel", "external_id"),
                                 (t.stock_alerts, "buyer_channel", "buyer_id"),
                                 (t.link_codes, "channel", "external_id"),
                                 (t.referral_codes, "channel", "external_id"),
                                 (t.risk_challenges, "buyer_channel", "buyer_id"),
                                 (t.reseller_users, "channel", "external_id")):
            note(table, (await self.c.execute(delete(table).where(_is(table, buyers, ch, ident)))).rowcount)
        keys = [b.key for b in buyers]
        note(t.link_codes, (await self.c.execute(delete(t.link_codes).where(t.link_codes.c.used_by.in_(keys))))
             .rowcount)
        ob = t.outbox
        note(ob, (await self.c.execute(delete(ob).where(_is(ob, buyers, "channel", "recipient"),
                                                       ob.c.status != "sent"))).rowcount)
        # Reward coupons never used: gone, and their codes stop working.
        mc, cu = t.member_coupons, t.coupon_uses
        unused = select(mc.c.digest).where(_is(mc, buyers, "buyer_channel", "buyer_id"),
                                           mc.c.digest.not_in(select(cu.c.digest)))
        digests = list((await self.c.execute(unused)).scalars())
        if digests:
            await self.c.execute(update(t.coupon_codes).where(t.coupon_codes.c.digest.in_(digests))
                                 .values(void_at=now))
            note(mc, (await self.c.execute(delete(mc).where(mc.c.digest.in_(digests)))).rowcount)
        # The buyer's own words and the account a top-up went to: blanked (the books need neither).
        o = t.orders
        note(o, (await self.c.execute(update(o).where(_is(o, buyers, "buyer_channel", "buyer_id"), o.c.account != "")
                                      .values(account=""))).rowcount)
        tk = t.tickets
        note(tk, (await self.c.execute(update(tk).where(_is(tk, buyers, "buyer_channel", "buyer_id"), tk.c.note != "")
                                       .values(note=""))).rowcount)
        # Every other trace: the anonymous id.
        swap = _Swap(buyers, anonymous)
        for table in t.metadata.sorted_tables:
            note(table, await self._rekey(table, buyers, swap))
        return changed

    async def _rekey(self, table: Table, buyers: Sequence[Buyer], swap: _Swap) -> int:
        pk = list(table.primary_key.columns)
        touched: set[tuple[Any, ...]] = set()
        for col in table.c:
            if isinstance(col.type, (String, Text)):
                name = col.name
                if name in BARE:
                    ch = BARE[name] if BARE[name] in table.c else ("channel" if "channel" in table.c else None)
                    where = _is(table, buyers, ch, name) if ch else col.in_(list(swap.ids))
                    res = await self.c.execute(select(*pk).where(where))
                    rows = [tuple(r) for r in res]
                    if rows:
                        await self.c.execute(update(table).where(where).values({name: swap.anonymous}))
                        touched.update(rows)
                    continue
                for old in swap.keys:
                    where = or_(col == old, col.like("%:" + _like(old), escape="\\"))
                    rows = [tuple(r) for r in await self.c.execute(select(*pk, col).where(where))]
                    for r in rows:
                        await self.c.execute(update(table).where(*(c == v for c, v in zip(pk, r[:-1], strict=True)))
                                             .values({name: swap.text(r[-1], False)}))
                        touched.add(r[:-1])
            elif isinstance(col.type, JSON):
                needles = [col.isnot(None)] + [or_(*(cast(col, Text).like("%" + _like(i) + "%", escape="\\")
                                                     for i in swap.ids))]
                for found in await self.c.execute(select(*pk, col).where(*needles)):
                    new_value = swap.json(found[-1])
                    if new_value != found[-1]:
                        key = tuple(found[:-1])
                        await self.c.execute(update(table).where(*(c == v for c, v in zip(pk, key, strict=True)))
                                             .values({col.name: new_value}))
                        touched.add(key)
        return len(touched)
