"""The catalogue's repositories in memory: products, and codes (the pool: picking, holding, selling, releasing,
burning), with the semantics of their SQL repositories.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.models import CodeStatus, Product, StoredCode
from tests.unit.fakes.state import FakeRepo, copied


class FakeProductRepo(FakeRepo):
    async def get(self, product_id: int) -> Product | None:
        return copied(self.s.products.get(product_id))

    async def get_many(self, ids: Sequence[int]) -> dict[int, Product]:
        return {i: copied(self.s.products[i]) for i in ids if i in self.s.products}

    async def by_sku(self, sku: str) -> Product | None:
        return next((copied(p) for p in self.s.products.values() if p.sku == sku), None)


class FakeCodeRepo(FakeRepo):
    def _sellable(self, c: StoredCode, product_id: int, now: datetime) -> bool:
        return (c.product_id == product_id and c.status is CodeStatus.AVAILABLE
                and (c.expires_at is None or c.expires_at > now))

    async def pick_available(self, product_id: int, n: int, now: datetime) -> list[int]:
        return sorted(i for i, c in self.s.codes.items() if self._sellable(c, product_id, now))[:max(n, 0)]

    async def available_counts(self, product_ids: Sequence[int], cap: int, now: datetime) -> dict[int, int]:
        return {pid: min(cap, sum(self._sellable(c, pid, now) for c in self.s.codes.values())) for pid in product_ids}

    async def hold(self, assignments: Sequence[tuple[int, str]]) -> int:
        """Conditional, like the SQL: only codes still available are held; returns how many were."""
        done = 0
        for cid, oid in sorted(assignments):
            c = self.s.codes.get(cid)
            if c is not None and c.status is CodeStatus.AVAILABLE:
                c.status, c.order_id = CodeStatus.HELD, oid
                done += 1
        return done

    def _move(self, order_ids: Sequence[str], old: Sequence[CodeStatus], new: CodeStatus, *,
              release: bool = False) -> int:
        ids = set(order_ids)
        moved = [c for c in self.s.codes.values() if c.order_id in ids and c.status in old]
        for c in moved:
            c.status = new
            if release:
                c.order_id = None
        return len(moved)

    async def sell_held(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.HELD], CodeStatus.SOLD)

    async def release(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.HELD], CodeStatus.AVAILABLE, release=True)

    async def burn(self, order_ids: Sequence[str]) -> int:
        return self._move(order_ids, [CodeStatus.SOLD, CodeStatus.HELD], CodeStatus.BURNED)

    async def reusable_for(self, product_ids: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for i, c in sorted(self.s.codes.items()):
            if c.product_id in product_ids and c.status is CodeStatus.REUSABLE:
                out[c.product_id] = i
        return out

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[StoredCode]]:
        ids = set(order_ids)
        out: dict[str, list[StoredCode]] = {}
        for _, c in sorted(self.s.codes.items()):
            if c.order_id in ids:
                out.setdefault(c.order_id, []).append(copied(c))
        return out

    async def get_many(self, ids: Sequence[int]) -> list[StoredCode]:
        return [copied(self.s.codes[i]) for i in sorted(set(ids)) if i in self.s.codes]
