#!/usr/bin/env python3
"""Telegram end to end: simulated customers buy through the real storefront against a local fake Bot API.

    .venv/bin/python bench/telegram_e2e.py [--customers 1000] [--concurrency 100] [--library aiogram|ptb|both]

Each customer: /start -> product page -> Buy (sendInvoice) -> pre_checkout_query -> successful_payment -> the
code message. The store is the real one (App on a fresh SQLite file, the library's polling, the outbox), the
Bot API is tests/fake_bot_api.py in the same process. Telegram's outbound limits are raised for the run
(telegram.limits): they are Telegram's rules, not our cost, and a customer here taps with no human pauses.
Latency: from pushing an update to the bot's answer to it. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, log, temp_dir  # noqa: E402
from core.inventory import import_codes  # noqa: E402
from core.settings import parse_settings  # noqa: E402
from tests.fake_bot_api import FakeBotAPI  # noqa: E402

TOKEN = "777:ABC"
SPOILER = re.compile(r"<tg-spoiler><code>([^<]+)</code></tg-spoiler>")


class TracedAPI(FakeBotAPI):
    """The fake Bot API, routing every answer of the bot to the customer (chat) it was for."""

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        self.inbox: dict[int, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.query_chat: dict[str, int] = {}
        self._routed = 0

    def _notify(self) -> None:  # called after every recorded call
        super()._notify()
        calls = self._calls
        while self._routed < len(calls):
            call = calls[self._routed]
            self._routed += 1
            if call.status != 200:
                continue
            chat = call.params.get("chat_id")
            if call.method == "answerPreCheckoutQuery":
                chat = self.query_chat.get(call.params.get("pre_checkout_query_id"))
            if isinstance(chat, int) and call.method in ("sendMessage", "sendInvoice", "answerPreCheckoutQuery",
                                                          "sendDocument"):
                self.inbox[chat].put_nowait(call)


async def expect(api: TracedAPI, chat: int, method: str, lat: list[float], t0: float, timeout: float = 30.0):  # noqa: ANN201
    while True:
        call = await asyncio.wait_for(api.inbox[chat].get(), timeout)
        if call.method == method:
            lat.append((time.perf_counter() - t0) * 1000)
            return call


async def customer(api: TracedAPI, product_id: int, n: int, lat: list[float], delivered: dict[int, list[str]]) -> None:
    uid = 100_000 + n
    user = api.user(uid, f"C{n}", "en")
    t0 = time.perf_counter()
    api.push_update(api.message_update(user, "/start"))
    menu = await expect(api, uid, "sendMessage", lat, t0)
    t0 = time.perf_counter()
    api.push_update(api.callback_update(user, f"p:{product_id}", {"message_id": menu.result["message_id"],
                                                                  "chat": {"id": uid, "type": "private"}, "date": 0}))
    page = await expect(api, uid, "sendMessage", lat, t0)
    t0 = time.perf_counter()
    api.push_update(api.callback_update(user, f"buy:{product_id}:1", {"message_id": page.result["message_id"],
                                                                      "chat": {"id": uid, "type": "private"},
                                                                      "date": 0}))
    invoice = await expect(api, uid, "sendInvoice", lat, t0)
    payload, amount = invoice.params["payload"], invoice.params["prices"][0]["amount"]
    t0 = time.perf_counter()
    pcq = api.pre_checkout_update(user, payload, amount)
    api.query_chat[pcq["pre_checkout_query"]["id"]] = uid
    api.push_update(pcq)
    answer = await expect(api, uid, "answerPreCheckoutQuery", lat, t0)
    assert answer.params["ok"] is True, answer.params
    t0 = time.perf_counter()
    api.push_update(api.successful_payment_update(user, payload, amount, f"charge-{n}"))
    while True:
        msg = await expect(api, uid, "sendMessage", lat, t0)
        codes = SPOILER.findall(msg.params["text"])
        if codes:
            delivered[uid] = codes
            return


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 1) if xs else 0.0


async def run(library: str, customers: int, concurrency: int, warmup: int = 20) -> dict[str, object]:
    from bots.telegram.wiring import build_telegram
    from run import App

    with temp_dir("bench-tg-") as d:
        async with TracedAPI() as api:
            settings = parse_settings({
                "store": {"name": "Bench", "hold_minutes": 60},
                "database": {"url": f"sqlite+aiosqlite:///{d / 'tg.db'}"},
                "vault": {"key_file": str(d / "vault.key")},
                "logging": {"level": "WARNING"},
                "telegram": {"token": TOKEN, "api_base": api.base, "library": library,
                             "limits": {"overall_per_second": 100000, "per_chat_burst": 100}},
                "catalog": [{"sku": "CARD", "title": "Card", "price": 100, "stars": 5}]}, d, env={})
            async with await App.open(settings) as app:
                await import_codes(app.db.uow, app.vault, app.clock, "CARD",
                                   [f"TG-{i:07d}\n".encode() for i in range(customers + warmup)],
                                   batch_size=20_000)
                product = await app.shop.product_by_sku("CARD")
                runtime = build_telegram(settings, app)
                await app.shop.start()
                await runtime.start()
                lat: list[float] = []
                delivered: dict[int, list[str]] = {}
                errors: Counter[str] = Counter()
                sem = asyncio.Semaphore(concurrency)

                async def one(n: int) -> None:
                    async with sem:
                        try:
                            await customer(api, product.id, n, lat, delivered)
                        except Exception as exc:  # noqa: BLE001 - counted in the figures
                            errors[type(exc).__name__] += 1

                # A few customers first, untimed: the libraries build their models on first use.
                await asyncio.gather(*(one(customers + n) for n in range(warmup)))
                lat.clear()
                delivered.clear()
                log(f"{library}: {customers} customers, {concurrency} at a time")
                t0 = time.perf_counter()
                await asyncio.gather(*(one(n) for n in range(customers)))
                seconds = time.perf_counter() - t0
                await runtime.stop()
        codes = Counter(c for cs in delivered.values() for c in cs)
        figures = {
            "purchases_per_s": round(len(delivered) / seconds, 1), "seconds": round(seconds, 2),
            "update_latency_ms_p50": pct(lat, 50), "update_latency_ms_p99": pct(lat, 99),
            "duplicates": sum(n - 1 for n in codes.values() if n > 1), "lost": customers - len(delivered),
            "errors": dict(errors)}
        log(f"{library}: {figures}")
        return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100, help="customers shopping at the same moment")
    ap.add_argument("--library", choices=["aiogram", "ptb", "both"], default="both")
    ap.add_argument("--warmup", type=int, default=20, help="untimed customers first (default 20)")
    args = ap.parse_args()
    libraries = ["aiogram", "ptb"] if args.library == "both" else [args.library]
    out: dict[str, object] = {"bench": "telegram_e2e", "customers": args.customers, "concurrency": args.concurrency}
    for lib in libraries:
        out[lib] = asyncio.run(run(lib, args.customers, args.concurrency, args.warmup))
    aiogram = out.get("aiogram")
    if isinstance(aiogram, dict):
        out["ok"] = bool(aiogram["purchases_per_s"] >= 100 and aiogram["update_latency_ms_p99"] <= 250
                         and all(isinstance(v, dict) and v["duplicates"] == 0 and v["lost"] == 0
                                 for k, v in out.items() if k in libraries))
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
