"""The order path's repositories in memory: orders, payments (unique per provider transaction), the outbox and the
audit trail, with the semantics of their SQL repositories.
"""
from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from core.models import AuditEntry, Buyer, Order, OrderStatus, OutboxItem, Payment
from tests.unit.fakes.state import FakeRepo, OutboxRow, copied


class FakeOrderRepo(FakeRepo):
    async def get(self, order_id: str) -> Order | None:
        return copied(self.s.orders.get(order_id))

    async def get_many(self, ids: Sequence[str], for_update: bool = False, skip_locked: bool = False
                       ) -> dict[str, Order]:
        return {i: copied(self.s.orders[i]) for i in sorted(set(ids)) if i in self.s.orders}

    async def insert_many(self, orders: Sequence[Order]) -> None:
        for o in orders:
            assert o.id not in self.s.orders, f"duplicate order id {o.id}"  # the primary key
            self.s.orders[o.id] = copied(o)

    async def set_status(self, ids: Sequence[str], status: OrderStatus, at: datetime, *, paid: bool = False,
                         delivered: bool = False) -> None:
        for i in ids:
            o = self.s.orders.get(i)
            if o is not None:
                o.status = status
                if paid:
                    o.paid_at = at
                if delivered:
                    o.delivered_at = at

    async def settle_currency(self, orders: Sequence[Order]) -> None:
        for o in orders:
            if o.id in self.s.orders:
                row = self.s.orders[o.id]
                row.currency, row.unit_price, row.amount = o.currency, o.unit_price, o.amount

    async def set_reusable(self, pairs: Sequence[tuple[str, int]]) -> None:
        for oid, cid in pairs:
            if oid in self.s.orders:
                self.s.orders[oid].reusable_code_id = cid

    async def open_holds(self, buyers: Sequence[Buyer], now: datetime) -> dict[str, int]:
        keys = {b.key for b in buyers}
        out: dict[str, int] = {}
        for o in self.s.orders.values():
            if o.buyer.key in keys and o.status is OrderStatus.HELD and o.expires_at > now:
                out[o.buyer.key] = out.get(o.buyer.key, 0) + 1
        return out


class FakePaymentRepo(FakeRepo):
    async def existing(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
        wanted = set(keys)
        return {(p.provider, p.provider_txn_id): copied(p) for p in self.s.payments.values()
                if (p.provider, p.provider_txn_id) in wanted}

    async def insert_many(self, payments: Sequence[Payment]) -> list[Payment]:
        taken = {(p.provider, p.provider_txn_id) for p in self.s.payments.values()}
        for p in payments:
            assert (p.provider, p.provider_txn_id) not in taken, "unique (provider, provider_txn_id)"
            p.id = self.s.next_id()
            self.s.payments[p.id] = copied(p)
        return list(payments)

    async def for_order(self, order_id: str) -> list[Payment]:
        return [copied(p) for _, p in sorted(self.s.payments.items()) if p.order_id == order_id]


class FakeOutboxRepo(FakeRepo):
    async def add_many(self, items: Sequence[OutboxItem], lease_until: datetime | None = None,
                       due_at: datetime | None = None) -> None:
        """As the SQL: ids come back only for rows unique by (kind, order) in this call; leased rows share one
        lease token."""
        lease = secrets.token_hex(8) if lease_until else None
        ids: dict[tuple[str, str | None], int | None] = {}
        for i in items:
            row = OutboxItem(self.s.next_id(), i.kind, i.channel, i.recipient, i.order_id, copied(i.payload),
                             lease=lease)
            self.s.outbox.append(OutboxRow(row, lease_until or due_at or self.clock.now()))
            key = (i.kind, i.order_id)
            ids[key] = None if key in ids else row.id
        for i in items:
            i.lease = lease
            i.id = ids.get((i.kind, i.order_id))


class FakeAuditRepo(FakeRepo):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        self.s.audit.extend(copied(list(entries)))

    async def for_order(self, order_id: str) -> list[AuditEntry]:
        return [copied(e) for e in self.s.audit if e.order_id == order_id]

    async def count(self, action: str, actor: str | None = None, since: datetime | None = None) -> int:
        return sum(1 for e in self.s.audit if e.action == action and (actor is None or e.actor == actor)
                   and (since is None or e.at >= since))

    async def counts(self, action: str, actors: Sequence[str], since: datetime) -> dict[str, int]:
        wanted = set(actors)
        found = Counter(e.actor for e in self.s.audit if e.action == action and e.actor in wanted and e.at >= since)
        return dict(found)

    async def search(self, *, action: str | None, actor: str | None, order_id: str | None, since: datetime | None,
                     until: datetime | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        rows = [copied(e) for e in self.s.audit]
        for i, e in enumerate(rows, 1):
            e.id = i  # the fake's ids: the order of addition
        found = [e for e in reversed(rows) if (action is None or e.action == action)
                 and (actor is None or e.actor == actor) and (order_id is None or e.order_id == order_id)
                 and (since is None or e.at >= since) and (until is None or e.at < until)
                 and (before_id is None or (e.id or 0) < before_id)]
        return found[:limit]

    async def lock_actor(self, action: str, actor: str) -> None:
        """Nothing to lock: write transactions of the fake run one at a time."""

    async def lock_actors(self, action: str, actors: Sequence[str]) -> None:
        """Nothing to lock: write transactions of the fake run one at a time."""
