"""The PostgreSQL pool (storage/db.py): connections are kept and not pinged at every checkout, so a connection the
server dropped while it sat idle (a restart, a firewall's idle timeout) must be found and replaced at checkout,
before a buyer's request uses it."""
from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

import storage.db
from storage.db import Database
from tests.dbtemplate import pg_migrated


async def test_connections_the_server_dropped_while_idle_are_replaced_before_use(
        pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_migrated(pg_database)
    db = Database(url)
    try:
        async with db.uow(write=True) as uow:
            await uow.meta.set("probe", "one")
            await uow.commit()
        async with db.uow() as uow:
            assert await uow.meta.get("probe") == "one"

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:  # the server drops every pooled connection of this database
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        assert dropped >= 2  # the writer's and the reader's
        monkeypatch.setattr(storage.db, "PING_IDLE", 0.0)  # as if they had sat idle for a while

        async with db.uow() as uow:
            assert await uow.meta.get("probe") == "one"
        async with db.uow(write=True) as uow:
            await uow.meta.set("probe", "two")
            await uow.commit()
        async with db.uow() as uow:
            assert await uow.meta.get("probe") == "two"
    finally:
        await db.dispose()
