"""core.console.ConsoleRepo over console_links and console_sessions (migration 0013_console), bound to the unit of
work's connection (`uow.console`, storage/db.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from core.console import LinkRow, Role, Session
from core.models import Buyer
from storage import tables as t
from storage.base import SqlRepo

L = t.console_links.c
S = t.console_sessions.c


def _link(r: Any) -> LinkRow:
    return LinkRow(Buyer(r.merchant_channel, r.merchant_id), Role(r.role), r.expires_at, r.used_at)


def _session(r: Any) -> Session:
    return Session(r.id, Buyer(r.merchant_channel, r.merchant_id), Role(r.role), r.created_at, r.expires_at,
                   r.last_seen, r.ended_at, r.agent)


class ConsoleRepo(SqlRepo):
    """Implements core.console.ConsoleRepo."""

    async def add_link(self, token_hash: str, merchant: Buyer, role: str, at: datetime, expires: datetime) -> None:
        await self.c.execute(t.console_links.insert().values(
            token_hash=token_hash, merchant_channel=merchant.channel, merchant_id=merchant.external_id, role=role,
            created_at=at, expires_at=expires))

    async def use_link(self, token_hash: str, at: datetime) -> LinkRow | None:
        # One statement checks and spends the link: two tabs racing for it open one session.
        r = (await self.c.execute(
            update(t.console_links).where(L.token_hash == token_hash, L.used_at.is_(None), L.expires_at > at)
            .values(used_at=at).returning(L.merchant_channel, L.merchant_id, L.role, L.expires_at, L.used_at)
        )).first()
        return _link(r) if r else None

    async def link(self, token_hash: str) -> LinkRow | None:
        r = (await self.c.execute(select(t.console_links).where(L.token_hash == token_hash))).first()
        return _link(r) if r else None

    async def add_session(self, token_hash: str, merchant: Buyer, role: str, at: datetime, expires: datetime,
                          agent: str) -> int:
        r = await self.c.execute(t.console_sessions.insert().values(
            token_hash=token_hash, merchant_channel=merchant.channel, merchant_id=merchant.external_id, role=role,
            created_at=at, expires_at=expires, last_seen=at, agent=agent).returning(S.id))
        return int(r.scalar_one())

    async def session(self, token_hash: str) -> Session | None:
        r = (await self.c.execute(select(t.console_sessions).where(S.token_hash == token_hash))).first()
        return _session(r) if r else None

    async def touch(self, session_id: int, at: datetime) -> None:
        await self.c.execute(update(t.console_sessions).where(S.id == session_id).values(last_seen=at))

    async def end(self, session_ids: list[int], at: datetime) -> list[int]:
        if not session_ids:
            return []
        rows = await self.c.execute(update(t.console_sessions)
                                    .where(S.id.in_(session_ids), S.ended_at.is_(None))
                                    .values(ended_at=at).returning(S.id))
        return sorted(int(i) for i in rows.scalars())

    async def sessions(self, open_at: datetime | None, limit: int) -> list[Session]:
        q = select(t.console_sessions).order_by(S.id.desc()).limit(limit)
        if open_at is not None:
            q = q.where(S.ended_at.is_(None), S.expires_at > open_at)
        return [_session(r) for r in await self.c.execute(q)]
