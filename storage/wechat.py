"""The WeChat callback's replay memory in the database (migration 0011_wechat_nonces): every (timestamp, nonce)
pair a callback took, so every store process refuses a pair another one took. `NoncePairRepo` is bound to the unit
of work's connection (`uow.wechat`, storage/db.py); what a pair means and when it is taken is the adapter's
(bots/wechat/replays.py, on the shop's group committer)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Column, Index, String, Table, delete, select

from storage.base import SqlRepo
from storage.tables import TS, metadata

# One row per (timestamp, nonce) pair taken: its sha256, and when its timestamp goes stale (after which the
# callback refuses it anyway, so the row can go).
wechat_nonces = Table(
    "wechat_nonces", metadata,
    Column("pair", String(64), primary_key=True),
    Column("stale_at", TS, nullable=False),
    Index("ix_wechat_nonces_stale", "stale_at"),
)


class NoncePairRepo(SqlRepo):
    """Implements core.ports.NoncePairRepo. Two processes inserting one pair at once: the primary key fails one
    transaction (the group committer retries its items one by one, and the retry finds the pair taken)."""

    async def sweep(self, before: datetime) -> None:
        await self.c.execute(delete(wechat_nonces).where(wechat_nonces.c.stale_at < before))

    async def taken(self, pairs: Sequence[str]) -> set[str]:
        if not pairs:
            return set()
        q = select(wechat_nonces.c.pair).where(wechat_nonces.c.pair.in_(list(pairs)))
        return set((await self.c.execute(q)).scalars())

    async def add(self, pairs: Mapping[str, datetime]) -> None:
        if pairs:
            await self.c.execute(wechat_nonces.insert(), [{"pair": k, "stale_at": at} for k, at in pairs.items()])
