"""Repositories over SQLAlchemy Core. Set-based methods keep a batch's statement count fixed."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, literal_column, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import (
    AuditEntry,
    Buyer,
    CodeStatus,
    Customer,
    Kind,
    NewCode,
    Order,
    OrderStatus,
    OutboxItem,
    Payment,
    Product,
    ProductSpec,
    StockLine,
    StoredCode,
    SupplyRequest,
)
from storage import tables as t

PRODUCT_EDITABLE = {"price", "stars", "title", "active", "rules"}  # rules: a merchant command

# Locks are taken in id order in every method that takes them (no deadlocks between batches).


# Marks a statement that may scan the whole codes table: on SQLite it runs in the driver's thread, not on the
# event loop (storage/db.py). A comment, so PostgreSQL ignores it.
OFF_LOOP = "/* off-loop */"

# Statements run on every screen, built once: SQLAlchemy then skips building the statement and its cache key.
_ORDER_BY_ID = select(t.orders).where(t.orders.c.id == bindparam("id"))
_CUSTOMER_BY_KEY = select(t.customers).where(t.customers.c.channel == bindparam("channel"),
                                             t.customers.c.external_id == bindparam("external_id"))
_c = t.codes.c
_AVAILABLE_CAPPED = select(func.count()).select_from(
    select(literal_column("1")).select_from(t.codes)
    .where(_c.product_id == bindparam("pid"), _c.status == CodeStatus.AVAILABLE.value,
           or_(_c.expires_at.is_(None), _c.expires_at > bindparam("now")))
    .limit(bindparam("cap")).subquery())


class _Repo:
    def __init__(self, conn: AsyncConnection, dialect: str, now_fn) -> None:  # noqa: ANN001
        self.c = conn
        self.pg = dialect == "postgresql"
        self._now = now_fn


def _product(r: Any) -> Product:
    return Product(r.id, r.sku, Kind(r.kind), r.title, r.description, r.category, r.price, r.currency, r.stars,
                   r.min_qty, r.max_qty, r.hold_minutes, r.active, r.rules or {}, r.source)


class ProductRepo(_Repo):
    async def get(self, product_id: int) -> Product | None:
        r = (await self.c.execute(select(t.products).where(t.products.c.id == product_id))).first()
        return _product(r) if r else None

    async def get_many(self, ids: Sequence[int]) -> dict[int, Product]:
        if not ids:
            return {}
        rows = await self.c.execute(select(t.products).where(t.products.c.id.in_(list(ids))))
        return {r.id: _product(r) for r in rows}

    async def by_sku(self, sku: str) -> Product | None:
        r = (await self.c.execute(select(t.products).where(t.products.c.sku == sku))).first()
        return _product(r) if r else None

    async def list(self, active_only: bool = True) -> list[Product]:
        q = select(t.products).order_by(t.products.c.position, t.products.c.id)
        if active_only:
            q = q.where(t.products.c.active.is_(True))
        return [_product(r) for r in await self.c.execute(q)]

    async def upsert(self, spec: ProductSpec, source: str = "config") -> Product:
        now = self._now()
        values = {
            "kind": spec.kind.value, "title": spec.title, "description": spec.description,
            "category": spec.category, "price": spec.price, "currency": spec.currency, "stars": spec.stars,
            "min_qty": spec.min_qty, "max_qty": spec.max_qty, "hold_minutes": spec.hold_minutes,
            "active": spec.active, "rules": spec.rules, "updated_at": now, "position": spec.position,
            "source": source,
        }
        existing = await self.by_sku(spec.sku)
        if existing is None:
            await self.c.execute(t.products.insert().values(sku=spec.sku, created_at=now, **values))
        else:
            await self.c.execute(t.products.update().where(t.products.c.id == existing.id).values(**values))
        got = await self.by_sku(spec.sku)
        assert got is not None
        return got

    async def deactivate_except(self, skus: Sequence[str]) -> None:
        """Take config products no longer listed off sale; products a merchant made by command stay."""
        p = t.products.c
        await self.c.execute(update(t.products).where(p.sku.not_in(list(skus)), p.source == "config",
                                                      p.active.is_(True)).values(active=False))

    async def update(self, product_id: int, values: Mapping[str, Any]) -> None:
        unknown = set(values) - PRODUCT_EDITABLE
        if unknown:
            raise ValueError(f"product fields not editable: {sorted(unknown)}")
        await self.c.execute(update(t.products).where(t.products.c.id == product_id)
                             .values(**values, updated_at=self._now()))


def _code(r: Any) -> StoredCode:
    return StoredCode(r.id, r.product_id, CodeStatus(r.status), r.order_id, r.key_id, r.nonce, r.ciphertext,
                      r.expires_at)


class CodeRepo(_Repo):
    async def next_ids(self, n: int) -> list[int]:
        if self.pg:
            rows = await self.c.execute(text("SELECT nextval('codes_id_seq') FROM generate_series(1, :n)"), {"n": n})
            return [r[0] for r in rows]
        # SQLite: the write transaction (BEGIN IMMEDIATE) makes us the only writer.
        top = (await self.c.execute(select(func.max(t.codes.c.id)))).scalar() or 0
        return list(range(top + 1, top + 1 + n))

    async def insert_ignore(self, codes: Sequence[NewCode]) -> int:
        if not codes:
            return 0
        rows = [
            {"id": c.id, "product_id": c.product_id, "status": c.status.value, "order_id": c.order_id,
             "key_id": c.key_id, "nonce": c.nonce, "ciphertext": c.ciphertext, "fingerprint": c.fingerprint,
             "expires_at": c.expires_at}
            for c in codes
        ]
        if self.pg:
            stmt = pg_insert(t.codes).on_conflict_do_nothing(constraint="uq_codes_fingerprint").returning(t.codes.c.id)
            res = await self.c.execute(stmt, rows)
            return len(res.all())
        res = await self.c.execute(sqlite_insert(t.codes).on_conflict_do_nothing(), rows)
        return res.rowcount

    async def pick_available(self, product_id: int, n: int, now: datetime) -> list[int]:
        if n <= 0:
            return []
        c = t.codes.c
        q = (select(c.id).where(c.product_id == product_id, c.status == CodeStatus.AVAILABLE.value,
                                or_(c.expires_at.is_(None), c.expires_at > now))
             .order_by(c.id).limit(n))
        if self.pg:
            q = q.with_for_update(skip_locked=True)
        return list((await self.c.execute(q)).scalars())

    async def hold(self, assignments: Sequence[tuple[int, str]]) -> int:
        if not assignments:
            return 0
        ordered = sorted(assignments)
        if self.pg:
            res = await self.c.execute(text(
                "UPDATE codes SET status='held', order_id=v.o FROM "
                "(SELECT unnest(CAST(:ids AS bigint[])) AS id, unnest(CAST(:oids AS text[])) AS o) v "
                "WHERE codes.id = v.id AND codes.status = 'available' RETURNING codes.id"),
                {"ids": [a for a, _ in ordered], "oids": [b for _, b in ordered]})
            return len(res.all())
        stmt = (update(t.codes).where(t.codes.c.id == bindparam("cid"),
                                      t.codes.c.status == CodeStatus.AVAILABLE.value)
                .values(status=CodeStatus.HELD.value, order_id=bindparam("oid")))
        res = await self.c.execute(stmt, [{"cid": a, "oid": b} for a, b in ordered])
        return res.rowcount

    async def sell_held(self, order_ids: Sequence[str]) -> int:
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(c.order_id.in_(list(order_ids)),
                                                         c.status == CodeStatus.HELD.value)
                                   .values(status=CodeStatus.SOLD.value))
        return res.rowcount

    async def burn(self, order_ids: Sequence[str]) -> int:
        """The codes of refunded orders: never sold again (the buyer has seen them)."""
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(
            c.order_id.in_(list(order_ids)), c.status.in_([CodeStatus.SOLD.value, CodeStatus.HELD.value]))
            .values(status=CodeStatus.BURNED.value))
        return res.rowcount

    async def release(self, order_ids: Sequence[str]) -> int:
        if not order_ids:
            return 0
        c = t.codes.c
        res = await self.c.execute(update(t.codes).where(c.order_id.in_(list(order_ids)),
                                                         c.status == CodeStatus.HELD.value)
                                   .values(status=CodeStatus.AVAILABLE.value, order_id=None))
        return res.rowcount

    async def reusable_for(self, product_ids: Sequence[int]) -> dict[int, int]:
        if not product_ids:
            return {}
        c = t.codes.c
        rows = await self.c.execute(select(c.product_id, func.max(c.id)).where(
            c.product_id.in_(list(product_ids)), c.status == CodeStatus.REUSABLE.value).group_by(c.product_id))
        return {pid: cid for pid, cid in rows}

    async def for_orders(self, order_ids: Sequence[str]) -> dict[str, list[StoredCode]]:
        if not order_ids:
            return {}
        rows = await self.c.execute(select(t.codes).where(t.codes.c.order_id.in_(list(order_ids)))
                                    .order_by(t.codes.c.id))
        out: dict[str, list[StoredCode]] = {}
        for r in rows:
            out.setdefault(r.order_id, []).append(_code(r))
        return out

    async def get_many(self, ids: Sequence[int]) -> list[StoredCode]:
        if not ids:
            return []
        rows = await self.c.execute(select(t.codes).where(t.codes.c.id.in_(list(ids))).order_by(t.codes.c.id))
        return [_code(r) for r in rows]

    async def not_under_key(self, key_id: str, after_id: int, limit: int) -> list[StoredCode]:
        c = t.codes.c
        rows = await self.c.execute(select(t.codes).where(c.key_id != key_id, c.id > after_id)
                                    .order_by(c.id).limit(limit).prefix_with(OFF_LOOP))
        return [_code(r) for r in rows]

    async def update_cipher(self, rows: Sequence[tuple[int, str, bytes, bytes]]) -> None:
        if not rows:
            return
        stmt = (update(t.codes).where(t.codes.c.id == bindparam("cid"))
                .values(key_id=bindparam("kid"), nonce=bindparam("n"), ciphertext=bindparam("ct")))
        await self.c.execute(stmt, [{"cid": a, "kid": b, "n": n, "ct": ct} for a, b, n, ct in rows])

    async def count_not_under_key(self, key_id: str) -> int:
        return (await self.c.execute(select(func.count()).select_from(t.codes).prefix_with(OFF_LOOP)
                                     .where(t.codes.c.key_id != key_id))).scalar() or 0

    async def sample_under_key(self, key_id: str) -> tuple[StoredCode, bytes] | None:
        r = (await self.c.execute(select(t.codes).where(t.codes.c.key_id == key_id).limit(1))).first()
        return (_code(r), bytes(r.fingerprint)) if r else None

    async def key_ids(self) -> set[str]:
        return set((await self.c.execute(select(t.codes.c.key_id).distinct().prefix_with(OFF_LOOP))).scalars())

    async def stock(self, now: datetime) -> list[StockLine]:
        c = t.codes.c
        counts: dict[int, dict[str, int]] = {}
        for pid, status, n in await self.c.execute(
                select(c.product_id, c.status, func.count()).group_by(c.product_id, c.status).prefix_with(OFF_LOOP)):
            counts.setdefault(pid, {})[status] = n
        expired = dict((await self.c.execute(
            select(c.product_id, func.count()).where(c.status == CodeStatus.AVAILABLE.value, c.expires_at <= now)
            .group_by(c.product_id).prefix_with(OFF_LOOP))).all())
        prods = await self.c.execute(select(t.products.c.id, t.products.c.sku)
                                     .order_by(t.products.c.position, t.products.c.id))
        out = []
        for pid, sku in prods:
            n = counts.get(pid, {})
            gone = expired.get(pid, 0)
            out.append(StockLine(pid, sku, n.get("available", 0) - gone + n.get("reusable", 0), n.get("held", 0),
                                 n.get("sold", 0), gone))
        return out

    async def available_counts(self, product_ids: Sequence[int], cap: int, now: datetime) -> dict[int, int]:
        out = {}
        for pid in product_ids:
            row = await self.c.execute(_AVAILABLE_CAPPED, {"pid": pid, "now": now, "cap": cap})
            out[pid] = row.scalar() or 0
        return out


def _lock_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def _order(r: Any) -> Order:
    return Order(r.id, Buyer(r.buyer_channel, r.buyer_id), r.chat_id, r.product_id, r.qty, r.unit_price, r.amount,
                 r.currency, r.stars, OrderStatus(r.status), r.language, r.created_at, r.expires_at, r.paid_at,
                 r.delivered_at, r.reusable_code_id, r.note, r.account or "")


class OrderRepo(_Repo):
    async def get(self, order_id: str) -> Order | None:
        r = (await self.c.execute(_ORDER_BY_ID, {"id": order_id})).first()
        return _order(r) if r else None

    async def get_many(self, ids: Sequence[str], for_update: bool = False, skip_locked: bool = False
                       ) -> dict[str, Order]:
        if not ids:
            return {}
        q = select(t.orders).where(t.orders.c.id.in_(sorted(ids))).order_by(t.orders.c.id)
        if for_update and self.pg:
            q = q.with_for_update(skip_locked=skip_locked)
        return {r.id: _order(r) for r in await self.c.execute(q)}

    async def insert_many(self, orders: Sequence[Order]) -> None:
        await self.c.execute(t.orders.insert(), [
            {"id": o.id, "buyer_channel": o.buyer.channel, "buyer_id": o.buyer.external_id, "chat_id": o.chat_id,
             "product_id": o.product_id, "qty": o.qty, "unit_price": o.unit_price, "amount": o.amount,
             "currency": o.currency, "stars": o.stars, "status": o.status.value, "language": o.language,
             "created_at": o.created_at, "expires_at": o.expires_at, "paid_at": o.paid_at,
             "delivered_at": o.delivered_at, "reusable_code_id": o.reusable_code_id, "note": o.note,
             "account": o.account}
            for o in orders])

    async def set_status(self, ids: Sequence[str], status: OrderStatus, at: datetime, *, paid: bool = False,
                         delivered: bool = False) -> None:
        values: dict[str, Any] = {"status": status.value}
        if paid:
            values["paid_at"] = at
        if delivered:
            values["delivered_at"] = at
        await self.c.execute(update(t.orders).where(t.orders.c.id.in_(list(ids))).values(**values))

    async def move(self, order_id: str, expected: OrderStatus, status: OrderStatus, at: datetime, *,
                   delivered: bool = False) -> bool:
        values: dict[str, Any] = {"status": status.value}
        if delivered:
            values["delivered_at"] = at
        res = await self.c.execute(update(t.orders).where(t.orders.c.id == order_id,
                                                          t.orders.c.status == expected.value).values(**values))
        return res.rowcount == 1

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
            keys = sorted({_lock_key(f"holds:{b.key}") for b in buyers})
            await self.c.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                                 {"keys": keys})
        rows = await self.c.execute(
            select(c.buyer_channel, c.buyer_id, func.count())
            .where(tuple_(c.buyer_channel, c.buyer_id).in_([(b.channel, b.external_id) for b in buyers]),
                   c.status == OrderStatus.HELD.value, c.expires_at > now)
            .group_by(c.buyer_channel, c.buyer_id))
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


def _payment(r: Any) -> Payment:
    return Payment(r.id, r.order_id, r.provider, r.provider_txn_id, r.amount, r.currency, r.payer, r.status,
                   r.created_at)


class PaymentRepo(_Repo):
    async def existing(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
        if not keys:
            return {}
        c = t.payments.c
        rows = await self.c.execute(select(t.payments).where(tuple_(c.provider, c.provider_txn_id).in_(list(set(keys)))))
        return {(r.provider, r.provider_txn_id): _payment(r) for r in rows}

    async def insert_many(self, payments: Sequence[Payment]) -> list[Payment]:
        if not payments:
            return []
        rows = [{"order_id": p.order_id, "provider": p.provider, "provider_txn_id": p.provider_txn_id,
                 "amount": p.amount, "currency": p.currency, "payer": p.payer, "status": p.status,
                 "created_at": p.created_at} for p in payments]
        # Ids are mapped back by the unique key: sort_by_parameter_order=True would make SQLAlchemy send one
        # INSERT per row on SQLite (callers never pass the same key twice).
        c = t.payments.c
        res = await self.c.execute(t.payments.insert().returning(c.id, c.provider, c.provider_txn_id), rows)
        ids = {(r.provider, r.provider_txn_id): r.id for r in res}
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


def _outbox(r: Any) -> OutboxItem:
    return OutboxItem(r.id, r.kind, r.channel, r.recipient, r.order_id, r.payload or {}, r.attempts, r.status,
                      r.lease)


class OutboxRepo(_Repo):
    async def add_many(self, items: Sequence[OutboxItem], lease_until: datetime | None = None,
                       due_at: datetime | None = None) -> None:
        now = due_at or self._now()
        c = t.outbox.c
        lease = secrets.token_hex(8) if lease_until else None
        res = await self.c.execute(t.outbox.insert().returning(c.id, c.kind, c.order_id), [
            {"kind": i.kind, "channel": i.channel, "recipient": i.recipient, "order_id": i.order_id,
             "payload": i.payload, "status": "pending", "attempts": 0, "next_attempt_at": lease_until or now,
             "created_at": now, "lease": lease}
            for i in items])
        for i in items:
            i.lease = lease
        # Ids come back for rows that are unique by (kind, order) in this call (a delivery per order).
        ids: dict[tuple[str, str | None], int | None] = {}
        for r in res:
            key = (r.kind, r.order_id)
            ids[key] = None if key in ids else r.id
        for i in items:
            i.id = ids.get((i.kind, i.order_id))

    async def claim(self, now: datetime, limit: int, lease_until: datetime) -> list[OutboxItem]:
        c = t.outbox.c
        sub = (select(c.id).where(c.status == "pending", c.next_attempt_at <= now).order_by(c.id).limit(limit))
        if self.pg:
            sub = sub.with_for_update(skip_locked=True)
        rows = await self.c.execute(update(t.outbox).where(c.id.in_(sub.scalar_subquery()))
                                    .values(next_attempt_at=lease_until, lease=secrets.token_hex(8))
                                    .returning(t.outbox))
        return sorted((_outbox(r) for r in rows), key=lambda i: i.id or 0)

    async def mark_sent(self, rows: Sequence[tuple[int, str | None]], at: datetime) -> None:
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


def _audit(r: Any) -> AuditEntry:
    return AuditEntry(r.action, r.actor, r.channel, r.at, r.order_id, r.product_id, r.code_id, r.detail or {})


class AuditRepo(_Repo):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        await self.c.execute(t.audit.insert(), [
            {"at": e.at, "action": e.action, "actor": e.actor, "channel": e.channel, "order_id": e.order_id,
             "product_id": e.product_id, "code_id": e.code_id, "detail": e.detail} for e in entries])

    async def for_order(self, order_id: str) -> list[AuditEntry]:
        rows = await self.c.execute(select(t.audit).where(t.audit.c.order_id == order_id).order_by(t.audit.c.id))
        return [_audit(r) for r in rows]

    async def latest(self, action: str, actor: str | None = None, limit: int = 50) -> list[AuditEntry]:
        c = t.audit.c
        q = select(t.audit).where(c.action == action)
        if actor is not None:
            q = q.where(c.actor == actor)
        rows = await self.c.execute(q.order_by(c.id.desc()).limit(limit))
        return [_audit(r) for r in rows]

    async def count(self, action: str, actor: str | None = None, since: datetime | None = None) -> int:
        c = t.audit.c
        conds = [c.action == action]
        if actor is not None:
            conds.append(c.actor == actor)
        if since is not None:
            conds.append(c.at >= since)
        return (await self.c.execute(select(func.count()).select_from(t.audit).where(and_(*conds)))).scalar() or 0

    async def lock_actor(self, action: str, actor: str) -> None:
        # SQLite: write transactions are already one at a time (BEGIN IMMEDIATE). PostgreSQL: a transaction
        # advisory lock; statements after it see what the previous holder committed (READ COMMITTED).
        if self.pg:
            await self.c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(f"audit:{action}:{actor}")})


class CustomerRepo(_Repo):
    async def get(self, buyer: Buyer, *, for_update: bool = False) -> Customer | None:
        q = _CUSTOMER_BY_KEY.with_for_update() if for_update and self.pg else _CUSTOMER_BY_KEY
        r = (await self.c.execute(q, {"channel": buyer.channel, "external_id": buyer.external_id})).first()
        return Customer(buyer, r.language, r.state or {}, r.created_at, r.phone or "", r.level or 0,
                        bool(r.reseller)) if r else None

    async def save(self, customer: Customer) -> None:
        now = self._now()
        values = {"channel": customer.buyer.channel, "external_id": customer.buyer.external_id,
                  "language": customer.language, "state": customer.state, "created_at": customer.created_at,
                  "updated_at": now}
        ins = (pg_insert if self.pg else sqlite_insert)(t.customers).values(**values)
        await self.c.execute(ins.on_conflict_do_update(
            index_elements=["channel", "external_id"],
            set_={"language": customer.language, "state": customer.state, "updated_at": now}))


    async def add_new(self, customers: Sequence[Customer]) -> None:
        if not customers:
            return
        now = self._now()
        rows = [{"channel": c.buyer.channel, "external_id": c.buyer.external_id, "language": c.language,
                 "state": c.state, "created_at": c.created_at, "updated_at": now} for c in customers]
        ins = (pg_insert if self.pg else sqlite_insert)(t.customers)
        await self.c.execute(ins.on_conflict_do_nothing(index_elements=["channel", "external_id"]), rows)


def _supply(r: Any) -> SupplyRequest:
    return SupplyRequest(r.request_id, r.supplier, r.supplier_sku, r.kind, r.status, r.created_at, r.updated_at,
                         r.order_id, r.qty, r.cost, r.upstream_id, r.detail)


class SupplyRepo(_Repo):
    async def get(self, request_id: str) -> SupplyRequest | None:
        r = (await self.c.execute(select(t.supply_requests)
                                  .where(t.supply_requests.c.request_id == request_id))).first()
        return _supply(r) if r else None

    async def save(self, request: SupplyRequest) -> None:
        row = {"request_id": request.request_id, "supplier": request.supplier, "supplier_sku": request.supplier_sku,
               "kind": request.kind, "status": request.status, "order_id": request.order_id, "qty": request.qty,
               "cost": request.cost, "upstream_id": request.upstream_id[:128], "detail": request.detail[:1000],
               "created_at": request.created_at, "updated_at": request.updated_at}
        ins = (pg_insert if self.pg else sqlite_insert)(t.supply_requests).values(**row)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["request_id"], set_={
            k: row[k] for k in ("status", "cost", "upstream_id", "detail", "updated_at")}))

    async def pending_topups(self, limit: int) -> list[SupplyRequest]:
        c = t.supply_requests.c
        rows = await self.c.execute(select(t.supply_requests).where(c.kind == "topup", c.status == "pending")
                                    .order_by(c.updated_at).limit(limit))
        return [_supply(r) for r in rows]

    async def spent_since(self, supplier: str, since: datetime) -> int:
        c = t.supply_requests.c
        return (await self.c.execute(select(func.coalesce(func.sum(c.cost), 0)).where(
            c.supplier == supplier, c.created_at >= since, c.status != "failed"))).scalar() or 0


class MetaRepo(_Repo):
    async def get(self, key: str) -> str | None:
        return (await self.c.execute(select(t.meta.c.value).where(t.meta.c.key == key))).scalar()

    async def set(self, key: str, value: str) -> None:
        ins = (pg_insert if self.pg else sqlite_insert)(t.meta).values(key=key, value=value)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    async def with_prefix(self, prefix: str) -> dict[str, str]:
        rows = await self.c.execute(select(t.meta).where(t.meta.c.key.like(prefix.replace("%", r"\%") + "%")))
        return {r.key: r.value for r in rows}
