"""An order's storage from hold to delivery: orders (`uow.orders`: holds, status moves by compare-and-set, the hold
cap's count), payments (`uow.payments`: unique per provider transaction) and the outbox (`uow.outbox`: rows leased
by token, marked only while the lease holds)."""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, text, update

from core.models import Buyer, Order, OrderStatus, OutboxItem, Payment
from storage import tables as t
from storage.base import SqlRepo, json_insert, json_rows, lock_key

# Run on every screen, built once: SQLAlchemy then skips building the statement and its cache key.
_ORDER_BY_ID = select(t.orders).where(t.orders.c.id == bindparam("id"))
# PostgreSQL: a batch's rows go in one INSERT of one JSON parameter (storage/base.py json_insert).
_ORDER_COLUMNS = [c.name for c in t.orders.c]
_INSERT_ORDERS = json_insert(t.orders, _ORDER_COLUMNS)
_PAYMENT_COLUMNS = ["order_id", "provider", "provider_txn_id", "amount", "currency", "payer", "status", "created_at"]
_INSERT_PAYMENTS = json_insert(t.payments, _PAYMENT_COLUMNS, returning=("id", "provider", "provider_txn_id"))
_OUTBOX_COLUMNS = ["kind", "channel", "recipient", "order_id", "payload", "status", "attempts", "next_attempt_at",
                   "created_at", "lease", "priority", "broadcast_id"]
_INSERT_OUTBOX = json_insert(t.outbox, _OUTBOX_COLUMNS, returning=("id", "kind", "order_id"))
# Sent rows, each still under the lease it was claimed with (a NULL lease matches nothing, as `lease = :ls` does).
_MARK_SENT = text("UPDATE outbox SET status = 'sent', sent_at = :at, lease = NULL "
                  "FROM unnest(CAST(:ids AS bigint[]), CAST(:leases AS text[])) AS v(id, ls) "
                  "WHERE outbox.id = v.id AND outbox.lease = v.ls AND outbox.status = 'pending'")


# Rows are read by position: a Row's attributes cost ~2 µs each, ten times its unpacking (a payment batch reads
# hundreds of orders). The rows are `select(t.orders)`'s, in the table's column order, checked here.
_ORDER_FIELDS = ("id", "buyer_channel", "buyer_id", "chat_id", "product_id", "qty", "unit_price", "amount", "currency",
                 "stars", "status", "language", "created_at", "expires_at", "paid_at", "delivered_at",
                 "reusable_code_id", "note", "account", "discount", "stars_discount", "promo")
assert tuple(t.orders.c.keys()) == _ORDER_FIELDS


def _order(r: Row[Any]) -> Order:
    (oid, channel, buyer_id, chat_id, product_id, qty, unit_price, amount, currency, stars, status, language,
     created_at, expires_at, paid_at, delivered_at, reusable_code_id, note, account, discount, stars_discount,
     promo) = r
    return Order(oid, Buyer(channel, buyer_id), chat_id, product_id, qty, unit_price, amount, currency, stars,
                 OrderStatus(status), language, created_at, expires_at, paid_at, delivered_at, reusable_code_id, note,
                 account or "", discount or 0, stars_discount or 0, promo or {})


class OrderRepo(SqlRepo):
    async def get(self, order_id: str) -> Order | None:
        r = (await self.c.execute(_ORDER_BY_ID, {"id": order_id})).first()
        return _order(r) if r else None

    async def get_many(self, ids: Sequence[str], for_update: bool = False, skip_locked: bool = False
                       ) -> dict[str, Order]:
        if not ids:
            return {}
        q = select(t.orders).where(self.among(t.orders.c.id, sorted(ids))).order_by(t.orders.c.id)
        if for_update and self.pg:
            q = q.with_for_update(skip_locked=skip_locked)
        return {o.id: o for o in map(_order, await self.c.execute(q))}

    async def insert_many(self, orders: Sequence[Order]) -> None:
        if not orders:
            return
        rows = [
            {"id": o.id, "buyer_channel": o.buyer.channel, "buyer_id": o.buyer.external_id, "chat_id": o.chat_id,
             "product_id": o.product_id, "qty": o.qty, "unit_price": o.unit_price, "amount": o.amount,
             "currency": o.currency, "stars": o.stars, "status": o.status.value, "language": o.language,
             "created_at": o.created_at, "expires_at": o.expires_at, "paid_at": o.paid_at,
             "delivered_at": o.delivered_at, "reusable_code_id": o.reusable_code_id, "note": o.note,
             "account": o.account, "discount": o.discount, "stars_discount": o.stars_discount,
             "promo": o.promo or None}
            for o in orders]
        if self.pg:
            await self.c.exec_driver_sql(_INSERT_ORDERS, json_rows(rows))
        else:
            await self.c.execute(t.orders.insert(), rows)

    async def set_status(self, ids: Sequence[str], status: OrderStatus, at: datetime, *, paid: bool = False,
                         delivered: bool = False) -> None:
        values: dict[str, Any] = {"status": status.value}
        if paid:
            values["paid_at"] = at
        if delivered:
            values["delivered_at"] = at
        await self.c.execute(update(t.orders).where(self.among(t.orders.c.id, ids)).values(**values))

    async def move(self, order_id: str, expected: OrderStatus, status: OrderStatus, at: datetime, *,
                   delivered: bool = False) -> bool:
        values: dict[str, Any] = {"status": status.value}
        if delivered:
            values["delivered_at"] = at
        res = await self.c.execute(update(t.orders).where(t.orders.c.id == order_id,
                                                          t.orders.c.status == expected.value).values(**values))
        return res.rowcount == 1

    async def settle_currency(self, orders: Sequence[Order]) -> None:
        if not orders:
            return
        stmt = update(t.orders).where(t.orders.c.id == bindparam("oid")).values(
            currency=bindparam("cur"), unit_price=bindparam("unit"), amount=bindparam("amt"))
        await self.c.execute(stmt, [{"oid": o.id, "cur": o.currency, "unit": o.unit_price, "amt": o.amount}
                                    for o in orders])

    async def set_reusable(self, pairs: Sequence[tuple[str, int]]) -> None:
        stmt = update(t.orders).where(t.orders.c.id == bindparam("oid")).values(reusable_code_id=bindparam("cid"))
        await self.c.execute(stmt, [{"oid": o, "cid": c} for o, c in pairs])

    async def open_holds(self, buyers: Sequence[Buyer], now: datetime) -> dict[str, int]:
        if not buyers:
            return {}
        c = t.orders.c
        if self.pg:
            # Holds are counted and then added in one transaction; another process's reserve batch must not
            # count the same buyer in between (it would grant holds past the cap). Per-buyer advisory locks,
            # taken in key order (no deadlock between batches), released at commit.
            keys = sorted({lock_key(f"holds:{b.key}") for b in buyers})
            await self.c.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                                 {"keys": keys})
        q = select(c.buyer_channel, c.buyer_id, func.count()).where(c.status == OrderStatus.HELD.value,
                                                                     c.expires_at > now)
        q = self.where_pairs(q, c.buyer_channel, c.buyer_id, ((b.channel, b.external_id) for b in buyers))
        rows = await self.c.execute(q.group_by(c.buyer_channel, c.buyer_id))
        return {f"{ch}:{bid}": n for ch, bid, n in rows}

    async def expired_holds(self, now: datetime, limit: int) -> list[Order]:
        c = t.orders.c
        rows = await self.c.execute(select(t.orders).where(c.status == OrderStatus.HELD.value, c.expires_at <= now)
                                    .order_by(c.expires_at).limit(limit))
        return [_order(r) for r in rows]

    async def for_buyer(self, buyer: Buyer, limit: int, offset: int) -> list[Order]:
        c = t.orders.c
        rows = await self.c.execute(select(t.orders).where(c.buyer_channel == buyer.channel,
                                                           c.buyer_id == buyer.external_id)
                                    .order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset))
        return [_order(r) for r in rows]

    async def for_buyers(self, buyers: Sequence[Buyer], limit: int, offset: int) -> list[Order]:
        """The orders of several accounts of one person (linked accounts), newest first."""
        if len(buyers) <= 1:
            return await self.for_buyer(buyers[0], limit, offset) if buyers else []
        c = t.orders.c
        rows = await self.c.execute(select(t.orders).where(or_(*[
            and_(c.buyer_channel == b.channel, c.buyer_id == b.external_id) for b in buyers]))
            .order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset))
        return [_order(r) for r in rows]

    async def recent(self, status: OrderStatus | None, limit: int, offset: int) -> list[Order]:
        c = t.orders.c
        q = select(t.orders).order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            q = q.where(c.status == status.value)
        return [_order(r) for r in await self.c.execute(q)]

    async def search(self, *, order_id: str | None, channel: str | None, buyer_id: str | None,
                     status: OrderStatus | None, since: datetime | None, until: datetime | None, limit: int,
                     offset: int) -> list[Order]:
        # Each filter has its index: the primary key, ix_orders_buyer (buyer id, channel, created_at: with or
        # without the channel), ix_orders_status_created, ix_orders_created.
        c = t.orders.c
        q = select(t.orders).order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset)
        if order_id is not None:
            q = q.where(c.id == order_id)
        if buyer_id is not None:
            q = q.where(c.buyer_id == buyer_id)
            if channel is not None:
                q = q.where(c.buyer_channel == channel)
        if status is not None:
            q = q.where(c.status == status.value)
        if since is not None:
            q = q.where(c.created_at >= since)
        if until is not None:
            q = q.where(c.created_at < until)
        return [_order(r) for r in await self.c.execute(q)]


assert tuple(t.payments.c.keys()) == ("id", "order_id", "provider", "provider_txn_id", "amount", "currency", "payer",
                                      "status", "created_at")


def _payment(r: Row[Any]) -> Payment:
    return Payment(*r)  # select(t.payments): the columns in Payment's order (checked above)


class PaymentRepo(SqlRepo):
    async def existing(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
        if not keys:
            return {}
        c = t.payments.c
        rows = await self.c.execute(self.where_pairs(select(t.payments), c.provider, c.provider_txn_id, keys))
        return {(p.provider, p.provider_txn_id): p for p in map(_payment, rows)}

    async def insert_many(self, payments: Sequence[Payment]) -> list[Payment]:
        if not payments:
            return []
        rows = [{"order_id": p.order_id, "provider": p.provider, "provider_txn_id": p.provider_txn_id,
                 "amount": p.amount, "currency": p.currency, "payer": p.payer, "status": p.status,
                 "created_at": p.created_at} for p in payments]
        # Ids are mapped back by the unique key: sort_by_parameter_order=True would make SQLAlchemy send one
        # INSERT per row on SQLite (callers never pass the same key twice).
        c = t.payments.c
        if self.pg:
            res = await self.c.exec_driver_sql(_INSERT_PAYMENTS, json_rows(rows))
        else:
            res = await self.c.execute(t.payments.insert().returning(c.id, c.provider, c.provider_txn_id), rows)
        ids = {(provider, txn): pid for pid, provider, txn in res}
        for p in payments:
            p.id = ids[(p.provider, p.provider_txn_id)]
        return list(payments)

    async def get(self, payment_id: int) -> Payment | None:
        r = (await self.c.execute(select(t.payments).where(t.payments.c.id == payment_id))).first()
        return _payment(r) if r else None

    async def set_status(self, payment_id: int, status: str) -> None:
        await self.c.execute(update(t.payments).where(t.payments.c.id == payment_id).values(status=status))

    async def for_order(self, order_id: str) -> list[Payment]:
        rows = await self.c.execute(select(t.payments).where(t.payments.c.order_id == order_id)
                                    .order_by(t.payments.c.id))
        return [_payment(r) for r in rows]


assert tuple(t.outbox.c.keys()) == ("id", "kind", "channel", "recipient", "order_id", "payload", "status", "attempts",
                                    "next_attempt_at", "created_at", "sent_at", "last_error", "lease", "priority",
                                    "broadcast_id")


def _outbox(r: Row[Any]) -> OutboxItem:
    oid, kind, channel, recipient, order_id, payload, status, attempts, _, _, _, _, lease, _, _ = r
    return OutboxItem(oid, kind, channel, recipient, order_id, payload or {}, attempts, status, lease)


def _rank(i: OutboxItem) -> dict[str, Any]:
    """A row's priority and broadcast (core/broadcast.py): broadcast messages go after everything else."""
    if i.kind == "broadcast":
        return {"priority": 1, "broadcast_id": int(i.payload["broadcast"])}
    return {"priority": 0, "broadcast_id": None}


class OutboxRepo(SqlRepo):
    async def add_many(self, items: Sequence[OutboxItem], lease_until: datetime | None = None,
                       due_at: datetime | None = None) -> None:
        now = due_at or self._now()
        c = t.outbox.c
        lease = secrets.token_hex(8) if lease_until else None
        rows = [{"kind": i.kind, "channel": i.channel, "recipient": i.recipient, "order_id": i.order_id,
                 "payload": i.payload, "status": "pending", "attempts": 0, "next_attempt_at": lease_until or now,
                 "created_at": now, "lease": lease, **_rank(i)} for i in items]
        if self.pg:
            res = await self.c.exec_driver_sql(_INSERT_OUTBOX, json_rows(rows))
        else:
            res = await self.c.execute(t.outbox.insert().returning(c.id, c.kind, c.order_id), rows)
        for i in items:
            i.lease = lease
        # Ids come back for rows that are unique by (kind, order) in this call (a delivery per order).
        ids: dict[tuple[str, str | None], int | None] = {}
        for oid, kind, order_id in res:
            key = (kind, order_id)
            ids[key] = None if key in ids else oid
        for i in items:
            i.id = ids.get((i.kind, i.order_id))

    async def claim(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxItem]:
        c = t.outbox.c
        # Deliveries, refunds and notices (priority 0) before broadcast messages (1): an announcement to thousands
        # never holds up a buyer's codes.
        sub = (select(c.id).where(c.status == "pending", c.next_attempt_at <= now).order_by(c.priority, c.id)
               .limit(limit))
        if self.pg:
            sub = sub.with_for_update(skip_locked=True)
        rows = await self.c.execute(update(t.outbox).where(c.id.in_(sub.scalar_subquery()))
                                    .values(next_attempt_at=lease_until, lease=secrets.token_hex(8))
                                    .returning(t.outbox))
        return sorted((_outbox(r) for r in rows), key=lambda i: i.id or 0)

    async def mark_sent(self, rows: Sequence[tuple[int, str | None]], at: datetime) -> None:
        if self.pg:
            await self.c.execute(_MARK_SENT, {"at": at, "ids": [i for i, _ in rows], "leases": [ls for _, ls in rows]})
            return
        c = t.outbox.c
        stmt = (update(t.outbox).where(c.id == bindparam("oid"), c.lease == bindparam("ls"), c.status == "pending")
                .values(status="sent", sent_at=at, lease=None))
        await self.c.execute(stmt, [{"oid": i, "ls": lease} for i, lease in rows])

    async def mark_failed(self, failures: Sequence[tuple[int, str | None, str, datetime, bool, bool]]) -> None:
        c = t.outbox.c
        stmt = (update(t.outbox).where(c.id == bindparam("oid"), c.lease == bindparam("ls"), c.status == "pending")
                .values(attempts=c.attempts + bindparam("inc"), last_error=bindparam("err"),
                        next_attempt_at=bindparam("nxt"), status=bindparam("st"), lease=None))
        await self.c.execute(stmt, [{"oid": i, "ls": lease, "err": e, "nxt": n, "st": "failed" if g else "pending",
                                     "inc": 1 if counted else 0} for i, lease, e, n, g, counted in failures])

    async def save_payloads(self, rows: Sequence[tuple[int, str | None, dict[str, Any]]]) -> list[bool]:
        # One statement per row (the row count tells whether the lease still held); only rows that sent
        # several messages come here, and few at a time.
        c = t.outbox.c
        stmt = (update(t.outbox).where(c.id == bindparam("oid"), c.lease == bindparam("ls"), c.status == "pending")
                .values(payload=bindparam("pl", type_=c.payload.type)))
        return [(await self.c.execute(stmt, {"oid": i, "ls": lease, "pl": payload})).rowcount == 1
                for i, lease, payload in rows]

    async def broadcast_counts(self, broadcast_id: int) -> dict[str, int]:
        """The messages of one broadcast by status (pending, sent, failed)."""
        c = t.outbox.c
        rows = await self.c.execute(select(c.status, func.count()).where(c.broadcast_id == broadcast_id)
                                    .group_by(c.status))
        return {r[0]: int(r[1]) for r in rows}

    async def pending_count(self) -> int:
        return (await self.c.execute(select(func.count()).select_from(t.outbox)
                                     .where(t.outbox.c.status == "pending"))).scalar() or 0

    async def due_now(self, kind: str, order_id: str) -> None:
        c = t.outbox.c
        await self.c.execute(update(t.outbox).where(c.kind == kind, c.order_id == order_id, c.status == "pending",
                                                    c.lease.is_(None)).values(next_attempt_at=self._now()))

    async def release_leases(self) -> None:
        now = self._now()
        await self.c.execute(update(t.outbox).where(t.outbox.c.status == "pending", t.outbox.c.lease.is_not(None))
                             .values(next_attempt_at=now, lease=None))
