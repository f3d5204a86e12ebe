"""The people's storage: customers (`uow.customers`: language and conversation state per chat account) and the
audit log (`uow.audit`: every reveal of a code and every merchant action, with a per-actor lock for limits)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.models import AuditEntry, Buyer, Customer
from storage import tables as t
from storage.base import OFF_LOOP, SqlRepo, json_insert, json_rows, lock_key

# Run on every screen, built once: SQLAlchemy then skips building the statement and its cache key.
_AUDIT_COLUMNS = ["at", "action", "actor", "channel", "order_id", "product_id", "code_id", "detail"]
_INSERT_AUDIT = json_insert(t.audit, _AUDIT_COLUMNS)  # PostgreSQL: a batch's entries in one statement
_CUSTOMER_BY_KEY = select(t.customers).where(t.customers.c.channel == bindparam("channel"),
                                             t.customers.c.external_id == bindparam("external_id"))


class CustomerRepo(SqlRepo):
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


def _audit(r: Row[Any]) -> AuditEntry:
    return AuditEntry(r.action, r.actor, r.channel, r.at, r.order_id, r.product_id, r.code_id, r.detail or {}, r.id)


class AuditRepo(SqlRepo):
    async def add_many(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        rows = [{"at": e.at, "action": e.action, "actor": e.actor, "channel": e.channel, "order_id": e.order_id,
                 "product_id": e.product_id, "code_id": e.code_id, "detail": e.detail} for e in entries]
        if self.pg:
            await self.c.exec_driver_sql(_INSERT_AUDIT, json_rows(rows))
        else:
            await self.c.execute(t.audit.insert(), rows)

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

    async def counts(self, action: str, actors: Sequence[str], since: datetime) -> dict[str, int]:
        c = t.audit.c
        if not actors:
            return {}
        rows = await self.c.execute(select(c.actor, func.count()).where(
            c.action == action, c.actor.in_(sorted(set(actors))), c.at >= since).group_by(c.actor))
        return {r[0]: int(r[1]) for r in rows}

    async def search(self, *, action: str | None, actor: str | None, order_id: str | None, since: datetime | None,
                     until: datetime | None, before_id: int | None, limit: int) -> list[AuditEntry]:
        # Newest first by id: the primary key walks backwards and stops after `limit` matches; an order or an actor
        # with its action narrows through their indexes (ix_audit_order, ix_audit_actor).
        c = t.audit.c
        conds: list[Any] = []
        if action is not None:
            conds.append(c.action == action)
        if actor is not None:
            conds.append(c.actor == actor)
        if order_id is not None:
            conds.append(c.order_id == order_id)
        if since is not None:
            conds.append(c.at >= since)
        if until is not None:
            conds.append(c.at < until)
        if before_id is not None:
            conds.append(c.id < before_id)
        rows = await self.c.execute(select(t.audit).where(*conds).order_by(c.id.desc()).limit(limit)
                                    .prefix_with(OFF_LOOP))  # a rare filter may walk far
        return [_audit(r) for r in rows]

    async def lock_actor(self, action: str, actor: str) -> None:
        # SQLite: write transactions are already one at a time (BEGIN IMMEDIATE). PostgreSQL: a transaction
        # advisory lock; statements after it see what the previous holder committed (READ COMMITTED).
        if self.pg:
            await self.c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"audit:{action}:{actor}")})

    async def lock_actors(self, action: str, actors: Sequence[str]) -> None:
        # As lock_actor, for many actors in one statement, in key order (two transactions locking overlapping
        # sets cannot wait for each other).
        if self.pg and actors:
            keys = sorted({lock_key(f"audit:{action}:{a}") for a in actors})
            await self.c.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                                 {"keys": keys})
