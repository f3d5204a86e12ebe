#!/usr/bin/env python3
"""Flash sale: 1,000 buyers race for a 100-unit flash sale, limit 1 each, through the Telegram path.

    .venv/bin/python bench/flash_sale.py [--buyers 1000] [--units 100] [--library aiogram|ptb] [--postgres URL]

The store is the real one (App on a fresh SQLite file, or a fresh PostgreSQL database with --postgres; the
library's polling; the outbox), its bot talking to the local fake Bot API (tests/fake_bot_api/) on the same event
loop. Every buyer opens the product page (it shows "100 left"), then all tap the flash button at once; every tenth
buyer taps it twice (the limit). The winners pay in Stars (pre_checkout_query, successful_payment) and get their
code. The figures come from the database and the bot's answers:
- sold: orders at the flash price (= units); oversold: above the cap (0); buyers_over_limit: buyers with more than
  one (0); delivered: codes the winners received;
- seconds_to_sold_out: from the taps to the last unit's invoice; p99_ms: a tap to the bot's answer (invoice or
  refusal), 99th percentile.
The coupon race figures (coupon_uses, coupon_overused) come from bench/coupon_race.py, run after the sale.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, log, postgres_database, temp_dir  # noqa: E402
from bench.coupon_race import main_async as coupon_race  # noqa: E402
from bench.telegram_e2e import SPOILER, TOKEN, TracedAPI, pct  # noqa: E402

ANSWERS = ("sendInvoice", "sendMessage")
WELCOME = "<b>Welcome to"


async def answer(api: TracedAPI, chat: int, timeout: float = 120.0, *, menus: bool = True) -> Any:
    """The bot's next answer to this chat: an invoice or a message. `menus=False`: the menu /start draws (its
    welcome), which may come late, is no answer to a tap."""
    while True:
        call = await asyncio.wait_for(api.inbox[chat].get(), timeout)
        if call.method in ANSWERS and (menus or not call.params.get("text", "").startswith(WELCOME)):
            return call


@contextlib.asynccontextmanager
async def database(directory: Path, postgres: str | None) -> AsyncIterator[str]:
    if postgres:
        async with postgres_database(postgres) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{directory / 'flash.db'}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app import App  # noqa: PLC0415 - after the path is set
    from config.settings import parse_settings  # noqa: PLC0415
    from core.flash_sales import FlashDesk, SaleSpec  # noqa: PLC0415
    from core.supply import import_codes  # noqa: PLC0415

    with temp_dir("bench-flash-") as d:
        async with TracedAPI() as api, database(d, args.postgres) as url:
            settings = parse_settings({
                "store": {"name": "Bench", "hold_minutes": 60, "max_open_holds": 3},
                "database": {"url": url},
                "vault": {"key_file": str(d / "vault.key")},
                "logging": {"level": "WARNING"},
                "telegram": {"token": TOKEN, "api_base": api.base, "library": args.library,
                             "limits": {"overall_per_second": 100000, "per_chat_burst": 100000}},
                "catalog": [{"sku": "CARD", "title": "Card", "price": 1000, "stars": 50}]}, d, env={})
            async with await App.open(settings) as app:
                await import_codes(app.db.uow, app.vault, app.clock, "CARD",
                                   [f"FS-{i:07d}\n".encode() for i in range(args.units * 2)])
                product = await app.shop.product_by_sku("CARD")
                assert product is not None
                now = app.clock.now()
                sale = await FlashDesk(app.shop.uow, app.clock.now).create(
                    SaleSpec("CARD", 500, args.units, 1, now, now + timedelta(hours=1)), "bench")
                runtime = app.add_telegram()
                await app.shop.start()
                await runtime.start()
                try:
                    return await race(app, api, product.id, sale.id, args)
                finally:
                    await runtime.stop()


async def race(app: Any, api: TracedAPI, pid: int, sale_id: int, args: argparse.Namespace) -> dict[str, Any]:
    users = [api.user(200_000 + n, f"B{n}", "en") for n in range(args.buyers)]
    pages: dict[int, Any] = {}

    async def open_page(user: dict) -> None:
        uid = user["id"]
        api.push_update(api.message_update(user, "/start"))
        menu = await answer(api, uid)
        api.push_update(api.callback_update(user, f"product:{pid}", {
            "message_id": menu.result["message_id"], "chat": {"id": uid, "type": "private"}, "date": 0}))
        pages[uid] = await answer(api, uid)

    log(f"{args.buyers} buyers open the product page")
    sem = asyncio.Semaphore(100)

    async def gated(user: dict) -> None:
        async with sem:
            await open_page(user)

    await asyncio.gather(*(gated(u) for u in users))
    await asyncio.sleep(1.0)  # late extras of /start (a welcome after the menu) are not answers to the taps
    for u in users:
        while not api.inbox[u["id"]].empty():
            api.inbox[u["id"]].get_nowait()
    flash_data = next(b["callback_data"] for b in pages[users[0]["id"]].params["reply_markup"]["inline_keyboard"][0])
    assert flash_data == f"buy:{pid}:1:1", flash_data
    assert f"{args.units} left" in pages[users[0]["id"]].params["text"]

    latency: list[float] = []
    invoices: dict[int, list[dict]] = {}
    refusals: Counter[str] = Counter()
    last_invoice = 0.0

    async def tap(user: dict, times: int) -> None:
        nonlocal last_invoice
        uid = user["id"]
        msg = {"message_id": pages[uid].result["message_id"], "chat": {"id": uid, "type": "private"}, "date": 0}
        t0 = time.perf_counter()
        for _ in range(times):
            api.push_update(api.callback_update(user, flash_data, msg))
        for k in range(times):
            call = await answer(api, uid, menus=False)
            if k == 0:
                latency.append((time.perf_counter() - t0) * 1000)
            if call.method == "sendInvoice":
                invoices.setdefault(uid, []).append(call.params)
                last_invoice = time.perf_counter()
            else:
                text = call.params["text"]
                kind = "sold_out" if "sold out" in text else "limit" if "limit" in text else "other"
                refusals[kind] += 1
                if kind == "other" and refusals[kind] == 1:
                    log(f"another answer: {text[:120]!r}")

    log(f"{args.buyers} buyers tap the flash button at once (every tenth twice)")
    start = time.perf_counter()
    await asyncio.gather(*(tap(u, 2 if i % 10 == 0 else 1) for i, u in enumerate(users)))
    seconds_to_sold_out = round(last_invoice - start, 2)

    log(f"{sum(len(v) for v in invoices.values())} invoices; the winners pay")
    delivered: dict[int, list[str]] = {}

    async def pay(user: dict, invoice: dict) -> None:
        uid = user["id"]
        amount = invoice["prices"][0]["amount"]
        pcq = api.pre_checkout_update(user, invoice["payload"], amount)
        api.query_chat[pcq["pre_checkout_query"]["id"]] = uid
        api.push_update(pcq)
        api.push_update(api.successful_payment_update(user, invoice["payload"], amount, f"ch-{uid}"))
        while uid not in delivered:
            call = await asyncio.wait_for(api.inbox[uid].get(), 120)
            if call.method == "sendMessage" and SPOILER.findall(call.params["text"]):
                delivered[uid] = SPOILER.findall(call.params["text"])

    by_uid = {u["id"]: u for u in users}
    await asyncio.gather(*(pay(by_uid[uid], inv) for uid, invs in invoices.items() for inv in invs))

    async with app.db.uow() as uow:
        sale = await uow.flash_sales.get(sale_id)
    orders = [o for o in await _orders(app) if "flash" in o.promo]
    per_buyer = Counter(o.buyer.key for o in orders)
    stars = sorted({inv["prices"][0]["amount"] for invs in invoices.values() for inv in invs})
    codes = Counter(c for cs in delivered.values() for c in cs)
    assert sale is not None
    return {"sold": len(orders), "oversold": max(0, len(orders) - args.units), "sale_counter": sale.sold,
            "buyers_over_limit": sum(1 for n in per_buyer.values() if n > 1),
            "delivered": len(codes), "duplicate_codes": sum(n - 1 for n in codes.values() if n > 1),
            "invoice_stars": stars, "refusals": dict(refusals), "seconds_to_sold_out": seconds_to_sold_out,
            "p99_ms": pct(latency, 99), "p50_ms": pct(latency, 50)}


async def _orders(app: Any) -> list[Any]:
    async with app.db.uow() as uow:
        return await uow.orders.recent(None, 100_000, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=1000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--library", choices=["aiogram", "ptb"], default="aiogram")
    ap.add_argument("--postgres", metavar="URL", help="a fresh database on this PostgreSQL server (else SQLite)")
    ap.add_argument("--no-coupons", action="store_true", help="leave out the coupon race")
    args = ap.parse_args()
    figures = asyncio.run(run(args))
    out: dict[str, Any] = {"bench": "flash_sale", "backend": "postgresql" if args.postgres else "sqlite",
                           "library": args.library, "buyers": args.buyers, "units": args.units, **figures}
    if not args.no_coupons:  # 500 orders racing for a 50-use coupon (bench/coupon_race.py), on the same backend
        race = asyncio.run(coupon_race(argparse.Namespace(orders=500, uses=50, no_pay=False,
                                                          postgres=args.postgres or "")))
        out.update({k: v for k, v in race.items() if k.startswith("coupon_")})
    out["ok"] = bool(out["sold"] == args.units and out["oversold"] == 0 and out["buyers_over_limit"] == 0
                     and out["delivered"] == args.units and out.get("coupon_overused", 0) == 0)
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
