"""A 30-day report over a large month of orders: how long `ReportDesk.figures` takes and how much memory the
process that makes it needs, on SQLite and (with --postgres URL) PostgreSQL.

The store's own schema (Alembic migrations, with the report's covering index) on a fresh SQLite file or a fresh
PostgreSQL database (created and dropped here). Seeding is not timed: --orders (1,000,000) paid orders spread
over November 2026 in the report's time zone, across 20 products, CNY and Stars, one in ten refunded, 200,000
buyers; one in a hundred a reseller's B2B API order and one in a hundred a group-chat order (with its quote), two
resellers; the funnel's counters for every day, product and channel; restock purchases pricing half the products
(the other half have a catalogue cost). The report then runs in a child process (`--report-only`), so
`peak_rss_mb` is the report's own, not the seeding's.

Targets: `seconds_sqlite` <= 5, `seconds_postgres` <= 3, `peak_rss_mb` <= 300. The console's page-load
figure: after the SQLite report, bench/console.py's 50 merchants sign in to the console on the same store and
load its pages (`console_p99_ms` <= 300, every answer 200). Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import insert

from bench.common import emit, log, sqlite_url, temp_dir
from bench.console import load as console_load
from core.clock import FakeClock
from core.reports import ReportDesk
from storage import tables as t
from storage.db import Database
from storage.groups import group_orders
from storage.reports import report_events
from storage.resellers import resellers

MONTH = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 1 November, 00:00 in ZONE: every order falls in the report
NOW = datetime(2026, 12, 1, 1, tzinfo=UTC)
PRODUCTS = 20
ZONE = "Asia/Shanghai"
RESELLERS = (1, 2)
COSTS = {f"P{i}": 60 for i in range(1, PRODUCTS // 2 + 1)}  # a catalogue cost; the rest by restock purchases
RESTOCKS = {f"P{i}": ("up", f"U{i}") for i in range(PRODUCTS // 2 + 1, PRODUCTS + 1)}


def order_rows(n: int, start: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(orders, the group-chat quotes of those that are group orders)."""
    rnd = random.Random(start)
    rows = []
    quotes = []
    for i in range(start, start + n):
        at = MONTH + timedelta(seconds=rnd.randrange(30 * 86400))
        currency = rnd.choice(["CNY", "XTR"])
        kind = rnd.randrange(100)
        channel, buyer = (("api", str(rnd.choice(RESELLERS))) if kind == 0 else
                          (rnd.choice(["telegram", "wechat"]), str(rnd.randrange(200_000))))
        product = rnd.randrange(1, PRODUCTS + 1)
        rows.append({"id": f"O{i}", "buyer_channel": channel, "buyer_id": buyer, "chat_id": "c",
                     "product_id": product, "qty": 1, "unit_price": 100, "amount": 100, "currency": currency,
                     "stars": None, "status": rnd.choice(["delivered"] * 9 + ["refunded"]), "language": "en",
                     "created_at": at, "expires_at": at, "paid_at": at})
        if kind == 1:  # a group-chat order: its member's channel, and its quote
            rows[-1]["buyer_channel"] = "telegram"
            quotes.append({"id": f"q{i}", "chat": "-100", "user": buyer, "reseller_id": rnd.choice(RESELLERS),
                           "product_id": product, "qty": 1, "unit": 100, "amount": 100, "currency": currency,
                           "status": "delivered", "language": "en", "order_id": f"O{i}",
                           "created_at": at - timedelta(minutes=1), "expires_at": at + timedelta(minutes=9)})
    return rows, quotes


def side_rows() -> dict[str, list[dict[str, Any]]]:
    """Resellers, the funnel's counters and restock purchases."""
    days = [(MONTH + timedelta(days=d, hours=8)).date() for d in range(30)]
    return {
        "resellers": [{"id": rid, "name": f"reseller-{rid}", "status": "active", "prices": {}, "currency": "CNY",
                       "created_at": MONTH} for rid in RESELLERS],
        "events": [{"day": day, "product_id": pid, "channel": ch, "kind": kind, "n": 500}
                   for day in days for pid in range(1, PRODUCTS + 1) for ch in ("telegram", "wechat")
                   for kind in ("view", "invoice")],
        "purchases": [{"request_id": f"rs-{sku}-{n}", "supplier": sup, "supplier_sku": ssku, "kind": "buy",
                       "status": "done", "order_id": None, "qty": 100, "cost": 100 * 55, "upstream_id": "",
                       "detail": "", "created_at": MONTH + timedelta(days=n), "updated_at": MONTH + timedelta(days=n)}
                      for sku, (sup, ssku) in RESTOCKS.items() for n in range(3)],
    }


async def seed(url: str, orders: int) -> None:
    db = Database(url)
    try:
        await db.upgrade()
        async with db.write_engine.begin() as conn:
            await conn.execute(insert(t.products), [
                {"id": i, "sku": f"P{i}", "kind": "code", "title": {}, "description": {}, "category": {}, "price": 100,
                 "currency": "CNY", "stars": None, "min_qty": 1, "max_qty": 5, "hold_minutes": None, "active": True,
                 "rules": {}, "position": i, "created_at": MONTH, "updated_at": MONTH} for i in range(1, PRODUCTS + 1)])
            side = side_rows()
            await conn.execute(insert(resellers), side["resellers"])
            await conn.execute(insert(report_events), side["events"])
            await conn.execute(insert(t.supply_requests), side["purchases"])
            for start in range(0, orders, 20_000):
                rows, quotes = order_rows(min(20_000, orders - start), start)
                await conn.execute(insert(t.orders), rows)
                if quotes:
                    await conn.execute(insert(group_orders), quotes)
                if start % 200_000 == 0:
                    log(f"seeded {start:,} / {orders:,}")
        if url.startswith("postgresql"):
            async with db.write_engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await db.dispose()


async def report(url: str) -> dict[str, Any]:
    db = Database(url)
    try:
        desk = ReportDesk(db.uow, FakeClock(NOW)).configure(zone=ZONE, currency="CNY", costs=COSTS,
                                                             restocks=RESTOCKS)
        period = desk.between("2026-11-01", "2026-11-30")
        started = time.perf_counter()
        figures = await desk.figures(period)
        seconds = time.perf_counter() - started
    finally:
        await db.dispose()
    assert set(figures.by_channel) == {"telegram", "wechat", "group", "b2b"} and len(figures.resellers) == 2
    assert figures.funnel.views and not figures.uncosted
    return {"seconds": round(seconds, 3), "orders_paid": figures.orders_paid, "buyers": figures.buyers,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def report_in_child(url: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--report-only", url], capture_output=True, text=True,
                         timeout=600, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def on_postgres(admin_url: str, orders: int) -> dict[str, Any]:
    name = f"store_bench_report_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(plain)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = admin_url.rsplit("/", 1)[0] + "/" + name
        await seed(url, orders)
        return report_in_child(url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "report", "orders": args.orders, "days": 30}
    with temp_dir("bench-report-") as d:
        url = sqlite_url(d / "store.db")
        started = time.perf_counter()
        await seed(url, args.orders)
        log(f"SQLite seeded in {time.perf_counter() - started:.1f} s")
        sq = report_in_child(url)
        if not args.no_console:  # the console on the same month: 50 merchants loading its pages at once
            log("console: 50 merchants on the seeded store")
            out.update(await console_load(url, merchants=args.merchants, rounds=args.rounds, key_dir=d))
    out.update({"seconds_sqlite": sq["seconds"], "peak_rss_mb_sqlite": sq["peak_rss_mb"],
                "orders_paid": sq["orders_paid"], "buyers": sq["buyers"]})
    ok = sq["seconds"] <= 5 and sq["peak_rss_mb"] <= 300 and sq["orders_paid"] == args.orders
    if not args.no_console:
        ok = ok and out["console_p99_ms"] <= 300 and out["console_non_200"] == 0
    if args.postgres:
        pg = await on_postgres(args.postgres, args.orders)
        out.update({"seconds_postgres": pg["seconds"], "peak_rss_mb_postgres": pg["peak_rss_mb"]})
        ok = ok and pg["seconds"] <= 3 and pg["peak_rss_mb"] <= 300 and pg["orders_paid"] == sq["orders_paid"]
    out["ok"] = ok
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--postgres", metavar="URL", help="also on PostgreSQL (a database is created and dropped)")
    p.add_argument("--merchants", type=int, default=50, help="console: merchants signed in at once")
    p.add_argument("--rounds", type=int, default=5, help="console: times each merchant loads every page")
    p.add_argument("--no-console", action="store_true", help="the report alone")
    p.add_argument("--report-only", metavar="DB_URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.report_only:
        print(json.dumps(asyncio.run(report(args.report_only))))
        return
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
