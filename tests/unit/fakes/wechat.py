"""The WeChat callback's (timestamp, nonce) pairs in memory: a pair is taken once."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tests.unit.fakes.state import FakeRepo


class FakeNoncePairRepo(FakeRepo):
    """The WeChat callback's (timestamp, nonce) pairs (core/ports.py NoncePairRepo)."""

    async def sweep(self, before: datetime) -> None:
        self.s.nonce_pairs = {k: at for k, at in self.s.nonce_pairs.items() if at >= before}

    async def taken(self, pairs: Sequence[str]) -> set[str]:
        return {p for p in pairs if p in self.s.nonce_pairs}

    async def add(self, pairs: Mapping[str, datetime]) -> None:
        for k, at in pairs.items():
            assert k not in self.s.nonce_pairs, "primary key"
            self.s.nonce_pairs[k] = at
