"""`run.py backup FILE` and `run.py restore FILE`: a restored store sells from the same stock, shows the same
orders and audit trail, and its codes decrypt with the same vault key; a wrong key, a running store, a database
holding data and a file that is no backup are refused with a clear message, nothing changed."""
from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import App
from core.errors import VaultError
from core.vault import KeyRing, write_key_file
from storage.jobs import SqlJobStore
from storage.ops import OpsQueries
from storage.scratch import create_database, drop_database
from tests.conftest import PG_URL
from tests.helpers import (
    buyer,
    import_n,
    make_settings,
    open_shop,
    pay,
    product_id,
    run_cli,
    settle,
    stock_of,
    write_config,
)


async def sell(app: Any, who: int, qty: int = 1) -> str:
    order = await app.shop.reserve(buyer(who), await product_id(app), qty, "en")
    await pay(app, order)
    await settle(app)
    return order.id


async def picture(app: Any, orders: list[str]) -> dict[str, Any]:
    """What the merchant and the buyers would see: stock, each order's state, codes and audit trail."""
    seen: dict[str, Any] = {"stock": await stock_of(app)}
    for i, oid in enumerate(orders):
        _, _, codes = await app.shop.reveal(oid, buyer(i))
        async with app.db.uow() as uow:
            order = await uow.orders.get(oid)
            audit = [(e.action, e.actor) for e in await uow.audit.for_order(oid)]
        seen[oid] = (order.status.value, sorted(codes), audit[:2])
    return seen


async def test_given_a_backup_then_restore_brings_back_stock_orders_audit_and_readable_codes(
        sqlite_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        await app.shop.start()
        await import_n(app, 6)
        orders = [await sell(app, 0, 2), await sell(app, 1)]
        before = await picture(app, orders)
        assert before["stock"] == (3, 0, 3)
    backup = tmp_path / "backups" / "store-1.db"
    backup.parent.mkdir()
    done = run_cli(config, "backup", str(backup))
    assert done.returncode == 0, done.stderr
    assert "2 orders, 6 codes" in done.stdout and "vault key" in done.stdout
    assert backup.stat().st_mode & 0o777 == 0o600
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):  # life goes on after the backup
        await app.shop.start()
        await sell(app, 2)
        assert await stock_of(app) == (2, 0, 4)

    refused = run_cli(config, "restore", str(backup))  # the database holds data: --force or nothing
    assert refused.returncode == 2 and "--force" in refused.stderr
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        assert await stock_of(app) == (2, 0, 4)

    restored = run_cli(config, "restore", str(backup), "--force")
    assert restored.returncode == 0, restored.stderr
    assert "2 orders, 6 codes" in restored.stdout and "kept as" in restored.stdout
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        assert await picture(app, orders) == before
        await app.shop.start()
        await sell(app, 3)  # and it sells on from the restored stock
        assert await stock_of(app) == (2, 0, 4)


async def test_given_another_vault_key_then_restore_says_the_codes_cannot_be_read_and_the_store_refuses(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        await app.shop.start()
        await import_n(app, 2)
        await sell(app, 0)
    backup = tmp_path / "store-backup.db"
    assert run_cli(write_config(tmp_path), "backup", str(backup)).returncode == 0

    other = tmp_path / "elsewhere"  # a new machine: the backup came along, its key did not
    other.mkdir()
    write_key_file(other / "vault.key", KeyRing.generate())
    result = run_cli(write_config(other), "restore", str(backup))
    assert result.returncode == 3, result.stderr
    assert "vault key cannot read it" in result.stderr and "not the one this database was written with" in result.stderr
    settings = make_settings(f"sqlite+aiosqlite:///{other / 'store.db'}", other)
    with pytest.raises(VaultError, match="not the one this database was written with"):
        await App.open(settings)
    shutil.copy(tmp_path / "vault.key", other / "vault.key")  # the key file found again: all readable
    async with await App.open(settings) as app:
        assert await stock_of(app) == (1, 0, 1)


async def test_given_the_store_runs_then_restore_is_refused_and_nothing_changes(
        sqlite_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    backup = tmp_path / "b.db"
    assert run_cli(config, "backup", str(backup)).returncode == 0
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        await import_n(app, 3)
        assert await SqlJobStore(app.db).claim("shop-1:4242:abc", app.clock.now(), timedelta(seconds=60))
        result = run_cli(config, "restore", str(backup), "--force")
        assert result.returncode == 2
        assert "shop-1:4242:abc" in result.stderr and "stop it first" in result.stderr
        assert await stock_of(app) == (3, 0, 0)


@pytest.mark.parametrize("content", [b"", b"order,code\n1,ABC\n", b"SQLite format 3\x00" + b"\x00" * 100])
async def test_given_a_file_that_is_no_backup_then_restore_refuses_and_nothing_changes(
        sqlite_url: str, tmp_path: Path, content: bytes) -> None:
    config = write_config(tmp_path)
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        await import_n(app, 3)
    bogus = tmp_path / "not-a-backup.db"
    bogus.write_bytes(content)
    result = run_cli(config, "restore", str(bogus), "--force")
    assert result.returncode == 2 and "restore refused" in result.stderr
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        assert await stock_of(app) == (3, 0, 0)
    missing = run_cli(config, "restore", str(tmp_path / "nowhere.db"))
    assert missing.returncode == 2 and "cannot be read" in missing.stderr


async def test_given_writes_while_backing_up_then_the_copy_is_consistent(sqlite_url: str, tmp_path: Path) -> None:
    """The online backup while the store sells: the copy holds whole purchases only (codes sold = delivered)."""
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        await app.shop.start()
        await import_n(app, 400)
        stop = asyncio.Event()

        async def keep_selling() -> int:
            n = 0
            while not stop.is_set():
                await sell(app, 100 + n)
                n += 1
            return n

        seller = asyncio.create_task(keep_selling())
        await asyncio.sleep(0.2)
        result = await asyncio.to_thread(run_cli, write_config(tmp_path), "backup", str(tmp_path / "live.db"))
        stop.set()
        sold = await seller
        assert result.returncode == 0, result.stderr
    other = tmp_path / "check"
    other.mkdir()
    shutil.copy(tmp_path / "live.db", other / "store.db")
    shutil.copy(tmp_path / "vault.key", other / "vault.key")
    async with await App.open(make_settings(f"sqlite+aiosqlite:///{other / 'store.db'}", other)) as app:
        available, held, sold_then = await stock_of(app)
        assert available + held + sold_then == 400 and 0 < sold_then <= sold
        assert (await OpsQueries(app.db).orders_by_status()).get("delivered", 0) == sold_then


# -- PostgreSQL: pg_dump / pg_restore --------------------------------------------------------------------------
needs_pg_tools = pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore") and PG_URL),
                                    reason="pg_dump/pg_restore are not installed or STORE_TEST_POSTGRES_URL is unset")


@needs_pg_tools
async def test_given_postgresql_then_backup_is_pg_dump_and_restore_round_trips_onto_a_fresh_database(
        tmp_path: Path) -> None:
    urls = [await create_database(PG_URL, f"store_backup_{i}_") for i in ("src", "dst")]
    try:
        src, dst = tmp_path / "src", tmp_path / "dst"
        src.mkdir()
        dst.mkdir()
        async with open_shop(urls[0], src) as (app, _, _):
            await app.shop.start()
            await import_n(app, 5)
            orders = [await sell(app, 0, 2)]
            before = await picture(app, orders)
        dump = tmp_path / "store.pgdump"
        done = run_cli(write_config(src, url=urls[0]), "backup", str(dump))
        assert done.returncode == 0, done.stderr
        assert dump.read_bytes().startswith(b"PGDMP")
        shutil.copy(src / "vault.key", dst / "vault.key")  # the key travels apart
        restored = run_cli(write_config(dst, url=urls[1]), "restore", str(dump))
        assert restored.returncode == 0, restored.stderr
        assert "1 orders, 5 codes" in restored.stdout
        async with open_shop(urls[1], dst) as (app, _, _):
            assert await picture(app, orders) == before
        again = run_cli(write_config(dst, url=urls[1]), "restore", str(dump))  # now it holds data
        assert again.returncode == 2 and "--force" in again.stderr
        sqlite_backup = tmp_path / "x.db"
        sqlite_backup.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
        wrong = run_cli(write_config(dst, url=urls[1]), "restore", str(sqlite_backup))
        assert wrong.returncode == 2 and "cannot be restored onto PostgreSQL" in wrong.stderr
    finally:
        for url in urls:
            await drop_database(PG_URL, url)

