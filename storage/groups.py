"""Reseller group chats (migration 0008_reseller_groups) and core.groups.GroupRepo over them: who owns a
reseller account, which group chat orders for which reseller, the members the owner allowed, and the quotes
shown in groups (pending until the member confirms). Bound to the unit of work's connection (`uow.groups`)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    delete,
    false,
    select,
    update,
)

from core.groups import GroupLink, GroupOrder
from core.resellers import Reseller
from storage.base import SqlRepo
from storage.resellers import _reseller, resellers
from storage.tables import TS, metadata

# The user who owns a reseller account ("telegram:123"): allows members, reads the wallet with /wallet.
reseller_owners = Table(
    "reseller_owners", metadata,
    Column("reseller_id", Integer, ForeignKey("resellers.id"), primary_key=True),
    Column("owner", String(96), nullable=False, unique=True),
)

# A group chat that orders for a reseller (one reseller per chat).
reseller_groups = Table(
    "reseller_groups", metadata,
    Column("chat", String(64), primary_key=True),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("linked_by", String(96), nullable=False),
    Column("linked_at", TS, nullable=False),
)

# Users seen typing commands in a linked group (their @username, lower case) and whether they may order.
group_members = Table(
    "group_members", metadata,
    Column("chat", String(64), primary_key=True),
    Column("user", String(64), primary_key=True),
    Column("username", String(64)),
    Column("allowed", Boolean, nullable=False, server_default=false()),
    Column("updated_at", TS, nullable=False),
    Index("ix_group_members_username", "chat", "username"),
)

# Quotes shown in groups and the orders they became.
group_orders = Table(
    "group_orders", metadata,
    Column("id", String(16), primary_key=True),  # the token on the Confirm / Cancel buttons
    Column("chat", String(64), nullable=False),
    Column("user", String(64), nullable=False),
    Column("reseller_id", Integer, ForeignKey("resellers.id"), nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(12), nullable=False),  # pending | cancelled | paid | delivered | unreachable
    Column("language", String(16), nullable=False),
    Column("order_id", String(24), unique=True),
    Column("message_id", BigInteger),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("ix_group_orders_user", "user", "status"),
)


def _order(r: Any) -> GroupOrder:
    return GroupOrder(r.id, r.chat, r.user, r.reseller_id, r.product_id, r.qty, r.unit, r.amount, r.currency,
                      r.status, r.language, r.created_at, r.expires_at, r.order_id, r.message_id)


class GroupRepo(SqlRepo):
    """Implements core.groups.GroupRepo (`uow.groups`, storage/db.py)."""

    async def set_owner(self, reseller_id: int, owner: str) -> None:
        await self.c.execute(reseller_owners.insert().values(reseller_id=reseller_id, owner=owner))

    async def owner_of(self, reseller_id: int) -> str | None:
        q = select(reseller_owners.c.owner).where(reseller_owners.c.reseller_id == reseller_id)
        return (await self.c.execute(q)).scalar_one_or_none()

    async def by_owner(self, owner: str) -> int | None:
        q = select(reseller_owners.c.reseller_id).where(reseller_owners.c.owner == owner)
        return (await self.c.execute(q)).scalar_one_or_none()

    async def resellers(self) -> list[tuple[Reseller, str | None]]:
        q = (select(resellers, reseller_owners.c.owner)
             .select_from(resellers.outerjoin(reseller_owners, reseller_owners.c.reseller_id == resellers.c.id))
             .order_by(resellers.c.id))
        return [(_reseller(r), r.owner) for r in await self.c.execute(q)]

    async def link(self, link: GroupLink) -> None:
        await self.c.execute(delete(reseller_groups).where(reseller_groups.c.chat == link.chat))
        await self.c.execute(reseller_groups.insert().values(chat=link.chat, reseller_id=link.reseller_id,
                                                             linked_by=link.linked_by, linked_at=link.linked_at))

    async def unlink(self, chat: str) -> bool:
        res = await self.c.execute(delete(reseller_groups).where(reseller_groups.c.chat == chat))
        return res.rowcount == 1

    async def link_of(self, chat: str) -> GroupLink | None:
        r = (await self.c.execute(select(reseller_groups).where(reseller_groups.c.chat == chat))).first()
        return GroupLink(r.chat, r.reseller_id, r.linked_by, r.linked_at) if r else None

    async def seen(self, chat: str, user: str, username: str | None, at: datetime) -> None:
        m = group_members.c
        res = await self.c.execute(update(group_members).where(m.chat == chat, m.user == user)
                                   .values(username=username, updated_at=at))
        if res.rowcount == 0:
            await self.c.execute(group_members.insert().values(chat=chat, user=user, username=username, allowed=False,
                                                               updated_at=at))

    async def member(self, chat: str, user: str) -> tuple[str | None, bool] | None:
        m = group_members.c
        r = (await self.c.execute(select(m.username, m.allowed).where(m.chat == chat, m.user == user))).first()
        return (r.username, bool(r.allowed)) if r else None

    async def by_username(self, chat: str, username: str) -> str | None:
        m = group_members.c
        q = select(m.user).where(m.chat == chat, m.username == username).order_by(m.updated_at.desc()).limit(1)
        return (await self.c.execute(q)).scalar_one_or_none()

    async def set_allowed(self, chat: str, user: str, allowed: bool, at: datetime) -> None:
        m = group_members.c
        res = await self.c.execute(update(group_members).where(m.chat == chat, m.user == user)
                                   .values(allowed=allowed, updated_at=at))
        if res.rowcount == 0:
            await self.c.execute(group_members.insert().values(chat=chat, user=user, allowed=allowed, updated_at=at))

    async def add_order(self, g: GroupOrder) -> None:
        await self.c.execute(group_orders.insert().values(
            id=g.id, chat=g.chat, user=g.user, reseller_id=g.reseller_id, product_id=g.product_id, qty=g.qty,
            unit=g.unit, amount=g.amount, currency=g.currency, status=g.status, language=g.language,
            order_id=g.order_id, message_id=g.message_id, created_at=g.created_at, expires_at=g.expires_at))

    async def order(self, token: str) -> GroupOrder | None:
        r = (await self.c.execute(select(group_orders).where(group_orders.c.id == token))).first()
        return _order(r) if r else None

    async def by_order(self, order_id: str) -> GroupOrder | None:
        r = (await self.c.execute(select(group_orders).where(group_orders.c.order_id == order_id))).first()
        return _order(r) if r else None

    async def set_status(self, token: str, old: Sequence[str], new: str, order_id: str | None = None) -> bool:
        values: dict[str, Any] = {"status": new}
        if order_id is not None:
            values["order_id"] = order_id
        res = await self.c.execute(update(group_orders).where(
            group_orders.c.id == token, group_orders.c.status.in_(list(old))).values(**values))
        return res.rowcount == 1

    async def unreachable_of(self, user: str) -> list[str]:
        q = (select(group_orders.c.order_id).where(group_orders.c.user == user,
                                                   group_orders.c.status == "unreachable")
             .order_by(group_orders.c.created_at).limit(50))
        return [r.order_id for r in await self.c.execute(q) if r.order_id]

    async def set_message(self, token: str, message_id: int) -> None:
        await self.c.execute(update(group_orders).where(group_orders.c.id == token).values(message_id=message_id))
