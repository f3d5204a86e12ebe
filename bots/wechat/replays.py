"""The store's replay memory for the `/wechat` callback (callback.py ReplayMemory): each (timestamp, nonce) pair is
taken once by every store process, through the `wechat_nonces` table (`uow.wechat`, storage/wechat.py). Pairs are
group-committed (`NoncePair` on the shop's committer), so a rush of messages costs one transaction per batch."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.batching import GroupCommitter, QuietRequest
from core.ports import UnitOfWork

SWEEP_EVERY = 60.0  # seconds between two deletions of pairs whose timestamp has gone stale


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class NoncePair(QuietRequest):
    """A WeChat callback's (timestamp, nonce), taken once."""

    key: str
    now: float
    until: float


class StoreReplayMemory:
    """Implements callback.ReplayMemory on the store's database, shared by every process."""

    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self._swept = 0.0
        committer.register(NoncePair, self._batch)

    async def first_use(self, key: str, now: float, until: float) -> bool:
        return bool(await self.committer.submit(NoncePair(key, now, until)))

    async def _batch(self, uow: UnitOfWork, pairs: Sequence[NoncePair]) -> list[bool]:
        """True for each pair taken here first (a pair twice in one batch: its second copy is a replay)."""
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            await uow.wechat.sweep(_at(max(p.now for p in pairs)))
        taken = await uow.wechat.taken(sorted({p.key for p in pairs}))
        out: list[bool] = []
        new: dict[str, datetime] = {}
        for p in pairs:
            out.append(p.key not in taken and p.key not in new)
            if p.key not in taken:
                new.setdefault(p.key, _at(p.until))
        await uow.wechat.add(new)
        return out
