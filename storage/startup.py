"""Processes that start together on one PostgreSQL database take turns through their start-up writes (migrations,
the vault's check, the catalogue and its pictures, flash sales from the config): without it, two processes
started at once on a blank database both create the tables, and one fails. A session-level advisory lock on a
connection of its own (not from the store's pools, whose sizes are the store's business) is held from before the
migrations until the catalogue is applied; a process killed meanwhile loses its connection and so the lock. SQLite
needs none: its writers already take turns (BEGIN IMMEDIATE), and its migrations run in one transaction."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage.db import Database

log = logging.getLogger(__name__)

STARTUP_LOCK = 0x53544F5245  # "STORE": the advisory lock's key, the same for every process of this database


@asynccontextmanager
async def startup_lock(db: Database) -> AsyncIterator[None]:
    if db.dialect != "postgresql":
        yield
        return
    engine = create_async_engine(db.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            got = (await conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({STARTUP_LOCK})")).scalar()
            if not got:
                log.info("another store process is starting on this database: waiting for it")
                await conn.exec_driver_sql(f"SELECT pg_advisory_lock({STARTUP_LOCK})")
            await conn.commit()  # the lock is the session's, not the transaction's: no transaction stays open
            try:
                yield
            finally:
                await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({STARTUP_LOCK})")
                await conn.commit()
    finally:
        await engine.dispose()
