"""The order search's one query (storage/orders.py OrderRepo.search) on SQLite and PostgreSQL: a buyer is found
through an index whether the channel is given or not (0015_order_search put the buyer's id first in ix_orders_buyer),
and the migration goes up and down cleanly."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text

from core.models import Buyer, Order, OrderStatus, new_order_id
from storage.db import Database
from tests.helpers import open_shop, product_id
from tests.test_suppliers_migration import _alembic

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _orders(pid: int, n: int) -> list[Order]:
    out = []
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        who = Buyer("telegram" if i % 2 else "wechat", f"u{i % 500}")
        out.append(Order(new_order_id(at), who, who.external_id, pid, 1, 100, 100, "CNY", None,
                         OrderStatus.DELIVERED if i % 3 else OrderStatus.EXPIRED, "en", at, at))
    return out


async def _plan(app: Any, db_url: str, **search: Any) -> tuple[list[Order], str]:
    """The search's result and its query plan, from the statement the repository really ran."""
    ran: list[tuple[str, Any]] = []
    engine = app.db.read_engine.sync_engine

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        ran.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        async with app.db.uow() as uow:
            found = await uow.orders.search(**search)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, params = next((s, p) for s, p in ran if "FROM orders" in s)
    async with app.db.read_engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if db_url.startswith("sqlite"):
            rows = await driver.execute_fetchall("EXPLAIN QUERY PLAN " + statement, params)
            plan = "\n".join(str(r[-1]) for r in rows)
        else:
            await driver.execute("SET enable_seqscan = off")  # the table is small; ask which index it can use
            rows = await driver.fetch("EXPLAIN " + statement, *params)
            await driver.execute("RESET enable_seqscan")
            plan = "\n".join(r[0] for r in rows)
    return found, plan


async def test_a_buyer_is_searched_through_the_index_with_or_without_the_channel(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        pid = await product_id(app)
        made = _orders(pid, 3000)
        async with app.db.uow(write=True) as uow:
            await uow.orders.insert_many(made)
            await uow.commit()
        async with app.db.write_engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        base: dict[str, Any] = {"order_id": None, "status": None, "since": None, "until": None, "limit": 26,
                                "offset": 0}
        newest = sorted(made, key=lambda o: o.created_at, reverse=True)
        for channel in (None, "telegram"):
            found, plan = await _plan(app, db_url, **base, channel=channel, buyer_id="u7")
            want = [o.id for o in newest if o.buyer.external_id == "u7" and channel in (None, o.buyer.channel)]
            assert [o.id for o in found] == want and want
            assert "ix_orders_buyer" in plan, plan
        found, _ = await _plan(app, db_url, **{**base, "status": OrderStatus.EXPIRED,
                                               "since": T0 + timedelta(minutes=100),
                                               "until": T0 + timedelta(minutes=110)}, channel=None, buyer_id=None)
        assert [o.created_at for o in found] == [T0 + timedelta(minutes=m) for m in (108, 105, 102)]


async def test_the_migration_reorders_the_buyer_index_and_back(blank_db_url: str) -> None:
    db = Database(blank_db_url)

    async def columns() -> list[str]:
        async with db.read_engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("orders"))
        [ix] = [i for i in indexes if i["name"] == "ix_orders_buyer"]
        return list(ix["column_names"])

    try:
        await _alembic(db, "0013_console")
        assert await columns() == ["buyer_channel", "buyer_id", "created_at"]
        await _alembic(db, "0015_order_search")
        assert await columns() == ["buyer_id", "buyer_channel", "created_at"]
        await _alembic(db, "0013_console", down=True)
        assert await columns() == ["buyer_channel", "buyer_id", "created_at"]
        await _alembic(db, "heads")
        assert await columns() == ["buyer_id", "buyer_channel", "created_at"]
    finally:
        await db.dispose()
