"""Rules and risk in memory (core/risk/ports.py RiskRepo): what a buyer did, quotas, bans, linked identities,
challenges and each order's risk, read from the fake's orders, audit, customers and blacklist as the SQL reads them.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.links import Identity
from core.models import Buyer, OrderStatus
from core.risk import Activity, Ban, BuyerFacts, Challenge, Counts, OrderRisk
from tests.unit.fakes.state import LIVE, REFUNDED, ChallengeRow, FakeRepo, copied


class FakeRiskRepo(FakeRepo):
    """Rules and risk (core/risk/ports.py RiskRepo, storage/risk.py): the reads computed from the fake's orders, audit,
    customers and blacklist as the SQL computes them."""

    async def lock_buyers(self, keys: Sequence[str]) -> None:
        """Nothing to lock: write transactions of the fake run one at a time."""

    def _banned(self, buyers: Sequence[Buyer]) -> set[tuple[str, str]]:
        hits = {(kind, b.key) for b in buyers for kind in ("user", "payer") if (kind, b.key) in self.s.bans}
        phones = {self.s.customers[b.key].phone for b in buyers if b.key in self.s.customers} - {""}
        return hits | {("phone", p) for p in phones if ("phone", p) in self.s.bans}

    async def snapshot(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> tuple[dict[str, BuyerFacts], dict[str, Activity], set[tuple[str, str]]]:
        return (await self.buyer_facts(buyers), await self.activity(buyers, now, window, day, history),
                self._banned(buyers))

    async def buyer_facts(self, buyers: Sequence[Buyer]) -> dict[str, BuyerFacts]:
        return {b.key: self.s.customers[b.key].facts() for b in buyers if b.key in self.s.customers}

    async def activity(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> dict[str, Activity]:
        keys = {b.key for b in buyers}
        since = min(window, day, history)
        out: dict[str, Activity] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.created_at >= since:
                a = out.get(o.buyer.key, Activity())
                out[o.buyer.key] = Activity(
                    a.recent + (o.created_at >= window),
                    a.abandoned + (o.created_at >= day and o.status is OrderStatus.EXPIRED),
                    a.refunds + (o.created_at >= history and o.status in REFUNDED),
                    a.open_holds + (o.status is OrderStatus.HELD and o.expires_at > now))
        for e in self.s.audit:  # problem reports and reissues count like refunds
            if e.actor in keys and e.action in ("report", "reissue") and e.at >= history:
                a = out.get(e.actor, Activity())
                out[e.actor] = Activity(a.recent, a.abandoned, a.refunds + 1, a.open_holds)
        return out

    async def product_counts(self, buyers: Sequence[Buyer], product_ids: Sequence[int], day_start: datetime,
                             now: datetime) -> dict[tuple[str, int], Counts]:
        keys = {b.key for b in buyers}
        out: dict[tuple[str, int], Counts] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.product_id in product_ids:
                k = (o.buyer.key, o.product_id)
                c = out.get(k, Counts())
                live = o.status in LIVE
                out[k] = Counts(c.day_qty + (o.qty if live and o.created_at >= day_start else 0),
                                c.total_qty + (o.qty if live else 0),
                                c.open_holds + (o.status is OrderStatus.HELD and o.expires_at > now))
        return out

    async def chat_orders(self, chats: Sequence[str], since: datetime) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.s.orders.values():
            if o.chat_id in chats and o.created_at >= since:
                out[o.chat_id] = out.get(o.chat_id, 0) + 1
        return out

    async def blacklisted(self, entries: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return {e for e in entries if e in self.s.bans}

    async def bans(self, limit: int) -> list[Ban]:
        return copied(sorted(self.s.bans.values(), key=lambda b: b.at, reverse=True)[:limit])

    async def identities(self, phones: Sequence[str], persons: Sequence[str]) -> list[Identity]:
        return [Identity(c.buyer, c.phone, c.person, c.link_set) for c in self.s.customers.values()
                if (c.phone and c.phone in phones) or (c.person and c.person in persons)]

    async def passes(self, buyers: Sequence[Buyer], now: datetime) -> set[str]:
        keys = {b.key for b in buyers}
        return {r.challenge.buyer.key for r in self.s.challenges.values()
                if r.challenge.buyer.key in keys and r.valid_until is not None and r.valid_until > now}

    async def add_challenges(self, challenges: Sequence[Challenge], now: datetime) -> None:
        for ch in challenges:
            self.s.challenges[ch.token] = ChallengeRow(copied(ch))

    async def answer_challenge(self, token: str, buyer: Buyer, answer: str, now: datetime,
                               valid_until: datetime) -> bool:
        row = self.s.challenges.get(token)
        if row is None or row.challenge.buyer != buyer or row.status != "open" or row.challenge.expires_at <= now:
            return False
        if row.challenge.answer == answer:
            row.status, row.valid_until = "passed", valid_until
            return True
        row.status = "failed"
        return False

    async def record(self, rows: Sequence[OrderRisk]) -> None:
        for r in rows:
            self.s.order_risk[r.order_id] = copied(r)

    async def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRisk]:
        return {i: copied(self.s.order_risk[i]) for i in set(order_ids) if i in self.s.order_risk}

    async def set_expiry(self, order_ids: Sequence[str], expires_at: datetime) -> None:
        for i in order_ids:
            o = self.s.orders.get(i)
            if o is not None and o.status is OrderStatus.HELD:
                o.expires_at = expires_at
