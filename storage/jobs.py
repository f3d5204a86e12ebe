"""The scheduler's storage: the lease and the jobs' records in the `meta` table (jobs.lease.JobStore), and the
few set-based statements the jobs need: withdrawing expiring codes (core.supply.ExpiringCodes) and the daily
summary's figures (core.summary.SummaryFigures).

The lease is one `meta` row (`scheduler.lease`: owner and expiry as JSON), changed only by compare-and-set in
a write transaction: on PostgreSQL the row is read `FOR UPDATE` (a second process waits, then sees the new
value) and updated only if it still holds what was read; a first insert that loses the race inserts nothing
(`ON CONFLICT DO NOTHING ... RETURNING`). On SQLite write transactions run one at a time (BEGIN IMMEDIATE).
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import CodeStatus
from jobs.lease import JOB_PREFIX, LEASE_KEY, Lease
from storage import tables as t


class SqlJobStore:
    def __init__(self, db: Any) -> None:  # storage.db.Database
        self.db = db
        self.pg = db.dialect == "postgresql"

    def _insert(self) -> Any:
        return (pg_insert if self.pg else sqlite_insert)(t.meta)

    async def _read(self, conn: AsyncConnection, key: str, lock: bool) -> str | None:
        q = select(t.meta.c.value).where(t.meta.c.key == key)
        if lock and self.pg:
            q = q.with_for_update()
        return (await conn.execute(q)).scalar()

    async def _cas(self, conn: AsyncConnection, key: str, old: str | None, new: str) -> bool:
        """Set key to new if it still holds old (None: if it does not exist yet)."""
        if old is None:
            ins = self._insert().values(key=key, value=new).on_conflict_do_nothing(index_elements=["key"])
            return (await conn.execute(ins.returning(t.meta.c.key))).first() is not None
        upd = update(t.meta).where(t.meta.c.key == key, t.meta.c.value == old).values(value=new)
        return (await conn.execute(upd.returning(t.meta.c.key))).first() is not None

    # -- the lease and the job records ---------------------------------------------------------------
    async def claim(self, owner: str, now: datetime, ttl: timedelta, job: str | None = None,
                    slot: str | None = None) -> bool:
        async with self.db.write_engine.connect() as conn:
            await conn.begin()
            old = await self._read(conn, LEASE_KEY, lock=True)
            lease = Lease.parse(old)
            if lease is not None and lease.owner != owner and lease.until > now:
                return False  # held by another process (rolled back on close)
            if not await self._cas(conn, LEASE_KEY, old, Lease(owner, now + ttl).dump()):
                return False
            if job is not None:
                key = JOB_PREFIX + job
                raw = await self._read(conn, key, lock=True)
                state = json.loads(raw) if raw else {}
                if slot is not None and state.get("slot") == slot:
                    await conn.commit()  # the lease renewal stands; this tick already ran
                    return False
                state.update(slot=slot, started=now.isoformat(), runner=owner)
                if not await self._cas(conn, key, raw, json.dumps(state)):
                    return False
            await conn.commit()
            return True

    async def release(self, owner: str, now: datetime) -> None:
        async with self.db.write_engine.connect() as conn:
            await conn.begin()
            old = await self._read(conn, LEASE_KEY, lock=True)
            lease = Lease.parse(old)
            if lease is not None and lease.owner == owner:
                await self._cas(conn, LEASE_KEY, old, Lease(owner, now).dump())
            await conn.commit()

    async def lease(self) -> Lease | None:
        async with self.db.read_engine.connect() as conn:
            return Lease.parse(await self._read(conn, LEASE_KEY, lock=False))

    async def record(self, job: str, values: dict[str, Any]) -> None:
        """Merge values into the job's record (last run, result, ...)."""
        key = JOB_PREFIX + job
        async with self.db.write_engine.connect() as conn:
            await conn.begin()
            raw = await self._read(conn, key, lock=True)
            state = json.loads(raw) if raw else {}
            state.update(values)
            ins = self._insert().values(key=key, value=json.dumps(state))
            await conn.execute(ins.on_conflict_do_update(index_elements=["key"], set_={"value": json.dumps(state)}))
            await conn.commit()

    async def records(self) -> dict[str, dict[str, Any]]:
        async with self.db.read_engine.connect() as conn:
            rows = await conn.execute(select(t.meta).where(t.meta.c.key.like(JOB_PREFIX + "%")))
            return {r.key[len(JOB_PREFIX):]: json.loads(r.value) for r in rows}

    # -- what the jobs change or count -----------------------------------------------------------------
    async def withdraw_expiring(self, cutoff: datetime) -> dict[int, int]:
        """Available codes expiring at or before cutoff become withdrawn (never sold); product id -> count."""
        c = t.codes.c
        async with self.db.write_engine.connect() as conn:
            await conn.begin()
            rows = await conn.execute(
                update(t.codes)
                .where(c.status == CodeStatus.AVAILABLE.value, c.expires_at.is_not(None), c.expires_at <= cutoff)
                .values(status=CodeStatus.WITHDRAWN.value).returning(c.product_id))
            counts = Counter(r.product_id for r in rows)
            await conn.commit()
        return dict(counts)

    async def failures_between(self, start: datetime, end: datetime) -> dict[str, int]:
        """Outbox rows given up in the window, and rows still waiting after failed attempts."""
        c = t.outbox.c
        async with self.db.read_engine.connect() as conn:
            failed = (await conn.execute(select(func.count()).select_from(t.outbox).where(
                c.status == "failed", c.created_at >= start, c.created_at < end))).scalar() or 0
            retrying = (await conn.execute(select(func.count()).select_from(t.outbox).where(
                c.status == "pending", c.attempts > 0))).scalar() or 0
        return {"outbox_failed": int(failed), "outbox_retrying": int(retrying)}

