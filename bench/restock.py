#!/usr/bin/env python3
"""Restock under a burst: buyers drain 10 pools below their safety line at once; the scheduler's restock job
buys them back up from a supplier.

    .venv/bin/python bench/restock.py [--pools 10] [--up-to 100] [--below 20] [--tick 1.0] [--in-process]

The store is the real one (app.App on a fresh SQLite file, the outbox, the scheduler from app/ with the
lease, restock every --tick seconds). The supplier is the `http` supplier (suppliers/http.py, signed requests)
against the local fake supplier server (tests/fake_supplier.py), or with --in-process a supplier object in
this process; the JSON says which (`supplier`).

Figures: `seconds_to_restocked` (from the moment the last pool crossed its safety line to every pool back at
`up_to`), `seconds_to_above_line` (every pool back at or above `below`), `overbought` (codes bought beyond
`up_to` in any pool, plus codes bought upstream but never imported; must be 0), `supplier_calls` (requests the
supplier received), `purchases` (buy calls that bought), `bought`. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.bootstrap import job_intervals
from bench.common import CHANNEL, PROVIDER, emit, log, sqlite_url, temp_dir
from bench.shop import RecordingNotifier, open_app
from config.settings import parse_settings
from core.models import Buyer
from core.orders import PaymentNotice
from core.supply import import_codes
from jobs.scheduler import build_scheduler
from tests.fake_supplier import FakeSupplier

SUP_SKU = "SUP-GAME-10"
COST = 850  # fen, what the fake supplier lists SUP-GAME-10 at ("8.50" yuan)


class InProcessSupplier:
    """A supplier in this process: idempotent by request id, a small delay per call like a network hop."""

    name = "up"

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.orders: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.money = 100_000_000

    async def balance(self) -> int:
        self.calls["balance"] += 1
        await asyncio.sleep(self.delay)
        return self.money

    async def products(self) -> list[dict[str, Any]]:
        self.calls["products"] += 1
        await asyncio.sleep(self.delay)
        return [{"sku": SUP_SKU, "title": "Game card 10", "price": COST}]

    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]:
        self.calls["buy"] += 1
        await asyncio.sleep(self.delay)
        if request_id not in self.orders:
            self.money -= qty * COST
            self.orders[request_id] = [f"UP-{uuid.uuid4().hex[:16].upper()}" for _ in range(qty)]
        return list(self.orders[request_id])

    def figures(self) -> dict[str, int]:
        return {"supplier_calls": sum(self.calls.values()), "purchases": len(self.orders),
                "bought": sum(len(c) for c in self.orders.values())}


class FakeServerFigures:
    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def figures(self) -> dict[str, int]:
        buys = [o for o in self.fake.orders.values() if o.kind == "buy"]
        return {"supplier_calls": len(self.fake.requests), "purchases": sum(self.fake.purchases.values()),
                "bought": sum(len(o.codes) for o in buys)}


def settings_for(directory: Path, args: argparse.Namespace, supplier_conf: dict[str, Any] | None) -> Any:
    catalog = [{"sku": f"POOL-{i}", "title": f"Pool {i}", "price": 1000, "kind": "code", "max_qty": 10,
                "supplier": "up", "supplier_sku": SUP_SKU, "cost": COST,
                "restock": {"below": args.below, "up_to": args.up_to, "daily_budget": 100_000_000}}
               for i in range(args.pools)]
    data = {
        "store": {"name": "Bench Shop", "currency": "CNY", "languages": ["en"], "hold_minutes": 60,
                  "max_open_holds": 100, "demo": False},
        "database": {"url": sqlite_url(directory)},
        "vault": {"key_file": "vault.key"},
        "logging": {"level": "WARNING"},
        "catalog": catalog,
        "suppliers": {"up": supplier_conf or {"type": "http", "base_url": "http://127.0.0.1:9", "secret": "x"}},
        "jobs": {"restock_seconds": args.tick, "stock_alerts_seconds": 3600, "expire_codes_seconds": 3600,
                 "poll_topups_seconds": 3600, "daily_summary_at": ""},
    }
    return parse_settings(data, directory, env={})


async def available(app: Any, skus: list[str]) -> dict[str, int]:
    return {s.sku: s.available for s in await app.shop.stock() if s.sku in skus}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = None
    kind = "in-process"
    if not args.in_process:
        fake = await FakeSupplier().start()
        fake.balance = 100_000_000
        kind = "http+tests/fake_supplier.py"
    with temp_dir("bench-restock-") as d:
        settings = settings_for(d, args, fake.config(timeout=5, retries=1) if fake else None)
        notifier = RecordingNotifier()
        app = await open_app(settings, notifier)
        try:
            in_process = InProcessSupplier() if fake is None else None
            skus = [p.sku for p in settings.catalog]
            for sku in skus:  # full pools to start with (setup)
                lines = [f"{sku}-{uuid.uuid4().hex[:16]}\n".encode() for _ in range(args.up_to)]
                await import_codes(app.db.uow, app.vault, app.clock, sku, lines)
            await app.shop.start()
            runner = app.job_runner()
            if in_process is not None:
                app.jobs.restocking.suppliers = {"up": in_process}  # the bench's supplier
            scheduler = build_scheduler(app.shop, runner=runner, every=job_intervals(settings))
            scheduler.start()
            try:
                # The burst: every pool is drained to below its line at once (5 codes a buyer).
                products = {p.sku: p.id for p in await app.shop.products()}
                take = args.up_to - args.below + 5
                per_pool = -(-take // 5)
                log(f"burst: {per_pool * args.pools} buyers take {per_pool * 5} codes from each of {args.pools} pools")

                async def buyer(sku: str, i: int) -> None:
                    b = Buyer(CHANNEL, f"{sku}-{i}")
                    order = await app.shop.reserve(b, products[sku], 5, "en")
                    await app.shop.pay(PaymentNotice(order.id, PROVIDER, f"tx-{sku}-{i}", order.amount,
                                                     order.currency, payer=b))

                await asyncio.gather(*(buyer(sku, i) for sku in skus for i in range(per_pool)))
                crossed = time.perf_counter()
                low = await available(app, skus)
                log(f"all pools below the line: {sorted(set(low.values()))}")
                above_line = restocked = None
                deadline = crossed + args.timeout
                while time.perf_counter() < deadline:
                    now = await available(app, skus)
                    if above_line is None and all(n >= args.below for n in now.values()):
                        above_line = time.perf_counter() - crossed
                    if all(n >= args.up_to for n in now.values()):
                        restocked = time.perf_counter() - crossed
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(args.tick * 2)  # a few more ticks: nothing more may be bought
            finally:
                scheduler.shutdown(wait=False)
                await runner.release()
            final = await available(app, skus)
            figures = (in_process or FakeServerFigures(fake)).figures()
            imported = sum(final.values()) - sum(low.values())
            over_pool = sum(max(0, n - args.up_to) for n in final.values())
            overbought = over_pool + max(0, figures["bought"] - imported)
            records = await runner.store.records()
        finally:
            await app.close()
            if fake is not None:
                await fake.stop()
    ok = restocked is not None and overbought == 0
    return {"bench": "restock", "supplier": kind, "pools": args.pools, "below": args.below, "up_to": args.up_to,
            "tick_seconds": args.tick,
            "seconds_to_restocked": round(restocked, 3) if restocked is not None else None,
            "seconds_to_above_line": round(above_line, 3) if above_line is not None else None,
            "overbought": overbought, **figures, "final_min": min(final.values()), "final_max": max(final.values()),
            "restock_result": records.get("restock", {}).get("result", "")[:120], "ok": ok}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", type=int, default=10)
    p.add_argument("--up-to", type=int, default=100)
    p.add_argument("--below", type=int, default=20)
    p.add_argument("--tick", type=float, default=1.0, help="jobs.restock_seconds")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--in-process", action="store_true", help="an in-process supplier instead of the fake server")
    args = p.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
