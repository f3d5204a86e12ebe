#!/usr/bin/env python3
"""Telegram end to end: simulated customers buy through the real storefront against a local fake Bot API.

    .venv/bin/python bench/telegram_e2e.py [--customers 1000] [--rate 110] [--concurrency 100]
                                           [--library aiogram|ptb|both] [--same-process]

Each customer: /start -> product page -> Buy (sendInvoice) -> pre_checkout_query -> successful_payment -> the
code message. The store is the real one (App on a fresh SQLite file, the library's polling, the outbox). The
Bot API (tests/fake_bot_api/) and the customers run in a second process, as Telegram does not run on the
store's machine (`--same-process` puts them on the store's event loop, which then pays for both sides).

Two runs per library, each with its own fresh store:
- paced: customers arrive at `--rate` per second (open loop, like real traffic) and tap as soon as the bot
  answers. The targets are checked here: the store keeps up (purchases_per_s) and answers fast (p99).
- saturation: `--concurrency` customers at once, each starting the next purchase as soon as one ends (closed
  loop): the most the store does when pushed, and the latency that queueing then costs.
Telegram's outbound limits are raised for the run (telegram.limits): they are Telegram's rules, not our cost.
Latency: from pushing an update to the bot's answer to it. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, log, temp_dir  # noqa: E402
from tests.fake_bot_api import FakeBotAPI  # noqa: E402

TOKEN = "777:ABC"


def run_loop(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)
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


STEPS: dict[str, list[float]] = defaultdict(list)  # latency per step, for the per-step figures


async def expect(api: TracedAPI, chat: int, method: str, lat: list[float], t0: float, step: str,
                 timeout: float = 60.0):  # noqa: ANN201
    while True:
        call = await asyncio.wait_for(api.inbox[chat].get(), timeout)
        if call.method == method:
            ms = (time.perf_counter() - t0) * 1000
            lat.append(ms)
            STEPS[step].append(ms)
            return call


async def customer(api: TracedAPI, product_id: int, n: int, lat: list[float], delivered: dict[int, list[str]]) -> None:
    uid = 100_000 + n
    user = api.user(uid, f"C{n}", "en")
    chat = {"id": uid, "type": "private"}
    t0 = time.perf_counter()
    api.push_update(api.message_update(user, "/start"))
    menu = await expect(api, uid, "sendMessage", lat, t0, "start")
    t0 = time.perf_counter()
    api.push_update(api.callback_update(user, f"product:{product_id}",
                                        {"message_id": menu.result["message_id"], "chat": chat, "date": 0}))
    page = await expect(api, uid, "sendMessage", lat, t0, "product")
    t0 = time.perf_counter()
    api.push_update(api.callback_update(user, f"buy:{product_id}:1",
                                        {"message_id": page.result["message_id"], "chat": chat, "date": 0}))
    invoice = await expect(api, uid, "sendInvoice", lat, t0, "buy")
    payload, amount = invoice.params["payload"], invoice.params["prices"][0]["amount"]
    t0 = time.perf_counter()
    pcq = api.pre_checkout_update(user, payload, amount)
    api.query_chat[pcq["pre_checkout_query"]["id"]] = uid
    api.push_update(pcq)
    answer = await expect(api, uid, "answerPreCheckoutQuery", lat, t0, "pre_checkout")
    assert answer.params["ok"] is True, answer.params
    t0 = time.perf_counter()
    api.push_update(api.successful_payment_update(user, payload, amount, f"charge-{n}"))
    while True:
        msg = await expect(api, uid, "sendMessage", lat, t0, "paid_to_code")
        codes = SPOILER.findall(msg.params["text"])
        if codes:
            delivered[uid] = codes
            return


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 1) if xs else 0.0


async def shoppers(api: TracedAPI, product_id: int, first: int, customers: int, *, rate: float,
                   concurrency: int) -> dict[str, object]:
    """`customers` customers numbered from `first`: paced (rate > 0, open loop) or `concurrency` at a time."""
    lat: list[float] = []
    delivered: dict[int, list[str]] = {}
    errors: Counter[str] = Counter()

    async def one(n: int) -> None:
        try:
            await customer(api, product_id, n, lat, delivered)
        except Exception as exc:  # noqa: BLE001 - counted in the figures
            errors[type(exc).__name__ or "error"] += 1

    t0 = time.perf_counter()
    if rate > 0:
        tasks = []
        for i in range(customers):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(first + i)))
        await asyncio.gather(*tasks)
    else:
        sem = asyncio.Semaphore(concurrency)

        async def gated(n: int) -> None:
            async with sem:
                await one(n)

        await asyncio.gather(*(gated(first + i) for i in range(customers)))
    seconds = time.perf_counter() - t0
    steps = {k: pct(v, 99) for k, v in STEPS.items()}
    STEPS.clear()
    codes = Counter(c for cs in delivered.values() for c in cs)
    return {"purchases_per_s": round(len(delivered) / seconds, 1), "seconds": round(seconds, 2),
            "update_latency_ms_p50": pct(lat, 50), "update_latency_ms_p99": pct(lat, 99),
            "duplicates": sum(n - 1 for n in codes.values() if n > 1), "lost": customers - len(delivered),
            "step_latency_ms_p99": steps, "errors": dict(errors), "codes": sorted(codes)}


# -- the Telegram side: fake Bot API + customers ------------------------------------------------

async def telegram_side(commands: asyncio.StreamReader | None, say, plan_in: dict | None = None):  # noqa: ANN001, ANN201
    """Serve the fake Bot API; for each plan read from `commands` (one JSON line), run its customers and
    answer with their figures. A plan: {"product_id", "first", "customers", "rate", "concurrency"}."""
    async with TracedAPI() as api:
        say({"base": api.base})
        while True:
            line = await commands.readline() if commands is not None else b""
            if not line.strip():
                return
            plan = json.loads(line)
            say(await shoppers(api, plan["product_id"], plan["first"], plan["customers"], rate=plan["rate"],
                               concurrency=plan["concurrency"]))


def child_main() -> int:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await telegram_side(reader, lambda obj: print(json.dumps(obj), flush=True))

    run_loop(main())
    return 0


class ApiProcess:
    """The Telegram side in a child process, driven over its stdin/stdout (one JSON object per line)."""

    async def __aenter__(self) -> ApiProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--telegram-side", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.base = (await self._read())["base"]
        return self

    async def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake Bot API process ended early")
        return json.loads(line)

    async def run(self, plan: dict) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(plan) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read()

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class InProcess:
    """The Telegram side on the store's own event loop (--same-process)."""

    async def __aenter__(self) -> InProcess:
        self.api = TracedAPI()
        await self.api.start()
        self.base = self.api.base
        return self

    async def run(self, plan: dict) -> dict:
        return await shoppers(self.api, plan["product_id"], plan["first"], plan["customers"], rate=plan["rate"],
                              concurrency=plan["concurrency"])

    async def __aexit__(self, *exc: object) -> None:
        await self.api.stop()


# -- the store side -----------------------------------------------------------------------------

async def run(library: str, mode: str, args: argparse.Namespace) -> dict[str, object]:
    from app import App  # noqa: PLC0415 - the --telegram-side child skips the store
    from app.process import settle_heap  # noqa: PLC0415 - the --telegram-side child skips the store
    from config.settings import parse_settings  # noqa: PLC0415 - the --telegram-side child skips the store
    from core.supply import import_codes  # noqa: PLC0415 - the --telegram-side child skips the store

    side = InProcess() if args.same_process else ApiProcess()
    with temp_dir("bench-tg-") as d:
        async with side:
            settings = parse_settings({
                "store": {"name": "Bench", "hold_minutes": 60},
                "database": {"url": f"sqlite+aiosqlite:///{d / 'tg.db'}"},
                "vault": {"key_file": str(d / "vault.key")},
                "logging": {"level": "WARNING"},
                "telegram": {"token": TOKEN, "api_base": side.base, "library": library,
                             "limits": {"overall_per_second": 100000, "per_chat_burst": 100}},
                "catalog": [{"sku": "CARD", "title": "Card", "price": 100, "stars": 5}]}, d, env={})
            async with await App.open(settings) as app:
                await import_codes(app.db.uow, app.vault, app.clock, "CARD",
                                   [f"TG-{i:07d}\n".encode() for i in range(args.customers + args.warmup)],
                                   batch_size=20_000)
                product = await app.shop.product_by_sku("CARD")
                assert product is not None
                runtime = app.add_telegram()
                await app.shop.start()
                await runtime.start()
                settle_heap()  # as run.py does once the store serves
                try:
                    # A few customers first, untimed: the libraries build their models on first use.
                    await side.run({"product_id": product.id, "first": args.customers, "customers": args.warmup,
                                    "rate": 0, "concurrency": 10})
                    rate = args.rate if mode == "paced" else 0
                    log(f"{library} {mode}: {args.customers} customers, "
                        + (f"arriving at {rate}/s" if rate else f"{args.concurrency} at a time"))
                    cpu0 = time.process_time()
                    figures = await side.run({"product_id": product.id, "first": 0, "customers": args.customers,
                                              "rate": rate, "concurrency": args.concurrency})
                    # The store process's CPU (all its threads) per purchase: what the machine's load cannot skew.
                    figures["store_cpu_ms_per_purchase"] = round(
                        (time.process_time() - cpu0) * 1000 / max(1, args.customers - int(figures["lost"])), 2)
                finally:
                    await runtime.stop()
    codes = figures.pop("codes")
    assert isinstance(codes, list)
    log(f"{library} {mode}: {figures}")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=110.0, help="paced run: customers arriving per second (110)")
    ap.add_argument("--concurrency", type=int, default=100, help="saturation run: customers at once (100)")
    ap.add_argument("--library", choices=["aiogram", "ptb", "both"], default="both")
    ap.add_argument("--runs", choices=["paced", "saturation", "both"], default="both")
    ap.add_argument("--warmup", type=int, default=20, help="untimed customers first (default 20)")
    ap.add_argument("--same-process", action="store_true", help="fake Bot API and customers on the store's loop")
    ap.add_argument("--telegram-side", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.telegram_side:
        return child_main()
    libraries = ["aiogram", "ptb"] if args.library == "both" else [args.library]
    modes = ["paced", "saturation"] if args.runs == "both" else [args.runs]
    out: dict[str, object] = {"bench": "telegram_e2e", "customers": args.customers, "rate": args.rate,
                              "concurrency": args.concurrency, "same_process": args.same_process}
    for lib in libraries:
        out[lib] = {mode: run_loop(run(lib, mode, args)) for mode in modes}
    clean = all(r["duplicates"] == 0 and r["lost"] == 0 and not r["errors"]
                for lib in libraries for r in out[lib].values())  # type: ignore[union-attr]
    paced = out.get("aiogram", {}).get("paced")  # type: ignore[union-attr]
    out["ok"] = bool(clean and paced and paced["purchases_per_s"] >= 100 and paced["update_latency_ms_p99"] <= 250)
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
