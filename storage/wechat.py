"""The WeChat callback's replay memory in the database (migration 0011_wechat_nonces), so every store process
refuses a (timestamp, nonce) pair another one took: bots/wechat/callback.py ReplayMemory. Wired by
bots/wechat/wiring.py on the shop's group committer, so a rush of messages costs one transaction per batch."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, Index, String, Table, delete, select

from core.batching import QuietRequest
from storage.tables import TS, metadata

SWEEP_EVERY = 60.0  # seconds between two deletions of pairs whose timestamp has gone stale

# One row per (timestamp, nonce) pair taken: its sha256, and when its timestamp goes stale (after which the
# callback refuses it anyway, so the row can go).
wechat_nonces = Table(
    "wechat_nonces", metadata,
    Column("pair", String(64), primary_key=True),
    Column("stale_at", TS, nullable=False),
    Index("ix_wechat_nonces_stale", "stale_at"),
)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


@dataclass(frozen=True, slots=True)
class NoncePair(QuietRequest):
    """A WeChat callback's (timestamp, nonce), taken once."""

    key: str
    now: float
    until: float


class SqlReplayMemory:
    """Implements bots.wechat.callback.ReplayMemory. Two processes inserting one pair at once: the primary key
    fails one batch, which the committer retries item by item, and the retry finds the pair taken."""

    def __init__(self, committer: Any) -> None:
        self.committer = committer
        self._swept = 0.0
        committer.register(NoncePair, self._batch)

    async def first_use(self, key: str, now: float, until: float) -> bool:
        return bool(await self.committer.submit(NoncePair(key, now, until)))

    async def _batch(self, uow: Any, pairs: Sequence[NoncePair]) -> list[Any]:
        items = [(p.key, p.now, p.until) for p in pairs]
        c = uow.codes.c  # the unit of work's connection (as the other repositories use it)
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            await c.execute(delete(wechat_nonces).where(wechat_nonces.c.stale_at < _at(max(i[1] for i in items))))
        keys = list({k for k, _, _ in items})
        taken = set((await c.execute(select(wechat_nonces.c.pair).where(wechat_nonces.c.pair.in_(keys)))).scalars())
        out: list[Any] = []
        new: dict[str, float] = {}
        for key, _, until in items:
            out.append(key not in taken and key not in new)
            if key not in taken:
                new.setdefault(key, until)
        if new:
            await c.execute(wechat_nonces.insert(), [{"pair": k, "stale_at": _at(u)} for k, u in new.items()])
        return out
