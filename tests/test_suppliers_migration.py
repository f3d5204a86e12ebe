"""Migration 0002 on a database made by the released 0001, with an order in it: the order keeps everything and
gets an empty account; downgrading and upgrading again works. On SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from storage.db import MIGRATIONS, Database


async def _alembic(db: Database, target: str, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def run(sync_conn: Any) -> None:
        cfg.attributes["connection"] = sync_conn
        (command.downgrade if down else command.upgrade)(cfg, target)

    async with db.write_engine.begin() as conn:
        await conn.run_sync(run)


async def test_0002_upgrades_a_released_database_and_keeps_its_orders(blank_db_url):
    db = Database(blank_db_url)
    try:
        await _alembic(db, "0001")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with db.write_engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO products (id, sku, kind, title, description, category, price, currency, min_qty, "
                "max_qty, active, rules, created_at, updated_at) VALUES (1, 'A', 'code', '{}', '{}', '{}', 100, "
                "'CNY', 1, 1, true, '{}', :now, :now)"), {"now": now.replace(tzinfo=None)})
            await conn.execute(text(
                "INSERT INTO orders (id, buyer_channel, buyer_id, chat_id, product_id, qty, unit_price, amount, "
                "currency, status, language, created_at, expires_at) VALUES ('O1', 'test', 'u1', 'u1', 1, 1, 100, "
                "100, 'CNY', 'delivered', 'en', :now, :now)"), {"now": now.replace(tzinfo=None)})
        await db.upgrade()
        assert await db.current_revision() not in (None, "0001")  # 0002 or a later head
        async with db.uow() as uow:
            order = await uow.orders.get("O1")
            assert order is not None and order.account == "" and order.amount == 100
            assert await uow.supplies.pending_topups(10) == []
        await _alembic(db, "0001", down=True)
        await db.upgrade()
        assert await db.current_revision() not in (None, "0001")  # 0002 or a later head
    finally:
        await db.dispose()
