#!/usr/bin/env python3
"""Coupon race: N orders at once, each asking for the same shared coupon code limited to U uses, through the real
reserve (the coupon promotion in the batch, core/coupons.py) -> pay -> deliver path.

    .venv/bin/python bench/coupon_race.py [--orders 500] [--uses 50] [--postgres URL]

Counts the orders that got the coupon (`coupon_uses`, must equal U), what the campaign's own count says, the uses
stored (`coupon_uses` rows live), and any use past the limit (`coupon_overused`, must be 0). Orders refused the
coupon are refused whole (nothing held): `coupon_refused` of them. The last line is one JSON object.
`coupon_race(app, ...)` runs the race on a store already open (bench/flash_sale.py runs it on its own).
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CHANNEL, PROVIDER, SKU, emit, log, make_settings, postgres_database, temp_dir
from bench.shop import RecordingNotifier, import_pool, open_app
from core.coupons import PERCENT, Terms
from core.errors import StoreError
from core.models import Buyer
from core.payments import PaymentNotice


async def coupon_race(app: Any, *, orders: int = 500, uses: int = 50, sku: str = SKU, pay: bool = True,
                      name: str = "") -> dict[str, Any]:
    """`orders` buyers at once, one order each with the same shared code limited to `uses`; the figures."""
    product = await app.shop.product_by_sku(sku)
    if product is None or app.shop.coupons is None:
        raise RuntimeError(f"no product {sku} or coupons are off")
    run = secrets.token_hex(4)
    name = name or f"RACE{run.upper()}"
    code = f"RACE-{secrets.token_hex(6).upper()}"
    await app.shop.coupons.create(name, code, Terms(PERCENT, 10, product.currency, total_limit=uses))
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    with_coupon: list[str] = []

    async def buyer(i: int) -> None:
        b = Buyer(CHANNEL, f"race-{run}-{i}")
        t = time.perf_counter()
        try:
            order = await app.shop.reserve(b, product.id, 1, "en", promo={"coupon": code})
            with_coupon.append(order.id)
            if pay:
                res = await app.shop.pay(PaymentNotice(order.id, PROVIDER, f"race-{run}-{i}", order.amount,
                                                       order.currency, payer=b))
                outcomes[f"paid:{res.outcome}"] += 1
            else:
                outcomes["held"] += 1
        except StoreError as exc:
            outcomes[f"refused:{exc.code.value}"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, reported in the JSON
            outcomes[f"error:{type(exc).__name__}"] += 1
        latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(buyer(i) for i in range(orders)))
    seconds = time.perf_counter() - t0
    campaign = next(c for c in await app.shop.coupons.all() if c.name == name)
    async with app.db.uow() as uow:
        stored = sum((await uow.coupons.uses_by([campaign.id], [f"{CHANNEL}:race-{run}-{i}"
                                                                 for i in range(orders)])).values())
    got = len(with_coupon)
    latencies.sort()
    return {
        "coupon_orders": orders, "coupon_limit": uses, "coupon_uses": got, "coupon_counted": campaign.used,
        "coupon_uses_stored": stored, "coupon_overused": max(0, got - uses) + max(0, campaign.used - uses),
        "coupon_refused": outcomes.get("refused:coupon_exhausted", 0), "coupon_outcomes": dict(outcomes),
        "coupon_seconds": round(seconds, 3),
        "coupon_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1) if latencies
        else 0.0,
        "coupon_ok": got == uses == campaign.used == stored,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with temp_dir("bench-coupons-") as d:
        async def on(url: str | None) -> dict[str, Any]:
            settings = make_settings(d, url, max_open_holds=3)
            app = await open_app(settings, RecordingNotifier())
            try:
                await import_pool(app, args.orders)
                log(f"{args.orders} orders racing for a coupon of {args.uses} uses")
                return await coupon_race(app, orders=args.orders, uses=args.uses, pay=not args.no_pay)
            finally:
                await app.close()

        if args.postgres:
            async with postgres_database(args.postgres) as url:
                figures = await on(url)
        else:
            figures = await on(None)
    log(f"uses {figures['coupon_uses']} (must be {args.uses}), overused {figures['coupon_overused']} (must be 0)")
    return {"bench": "coupon_race", "backend": "postgresql" if args.postgres else "sqlite", **figures,
            "ok": figures["coupon_ok"] and figures["coupon_overused"] == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=500, help="orders at once, one buyer each (default 500)")
    ap.add_argument("--uses", type=int, default=50, help="the coupon's total uses (default 50)")
    ap.add_argument("--no-pay", action="store_true", help="hold the orders only (no payments)")
    ap.add_argument("--postgres", metavar="URL", default="",
                    help="run on a fresh database on this server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    emit(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
