#!/usr/bin/env python3
"""Mini App: 200 concurrent users browse and buy through the real store's `/app/api/` against the fake Bot API.

    .venv/bin/python bench/webapp.py [--users 200] [--purchases 3] [--postgres URL] [--keep]

The store is a real `run.py` process (aiohttp server with the Mini App API, the aiogram bot polling the fake Bot
API, the outbox); this process runs the fake Bot API (tests/fake_bot_api/) and the users, as Telegram and the
phones are not on the store's machine. Each user, as the page does, with its own signed initData: `GET /me`,
`GET /catalog`, `GET /search`, `GET /products/ID`, then per purchase `POST /orders` (an invoice link issued by
`createInvoiceLink`), pays the link as Telegram would (the bot gets the pre_checkout_query, answers it, then the
successful_payment), polls `GET /orders/ID` every 250 ms until delivered, and reveals the codes. Between two
taps a user thinks `--think` seconds (0.5; uniformly 0.5x-1.5x); `--think 0` fires every request as soon as the
last one answered (a saturation run: then the latency is the queueing of 200 users on a 2-core machine).
`--reveal` (1.0): the share of purchases whose codes the page asks for (each an audited `Shop.reveal`).

Figures: `api_p99_ms` (every API request of every user; target <= 100), `purchases_per_s` (delivered purchases
over the run's wall time), `duplicates` (a code delivered to more than one order, in the chat or on reveal; 0),
`lost` (paid orders not delivered within 60 s; 0), `first_load_kb` (the page at `/app/` and the same-origin files
it references, gzip-compressed; null while the store serves no page; target <= 150). The last line is one JSON
object.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from bench.common import (  # noqa: E402
    SKU,
    config_data,
    emit,
    log,
    postgres_database,
    sqlite_url,
    temp_dir,
    write_code_file,
)
from core.webapp_auth import sign_init_data  # noqa: E402
from tests.fake_bot_api import Call, FakeBotAPI  # noqa: E402

TOKEN = "777:ABC"
STARS = 5
SPOILER = re.compile(r"<tg-spoiler><code>([^<]+)</code></tg-spoiler>")
ASSET = re.compile(r"""(?:src|href)=["'](/[^"'#?]*)""")
DELIVERY_TIMEOUT = 60.0
POLL = 0.25  # seconds between a page's looks at its order while it waits for delivery
UNPACED = {"overall_per_second": 100_000, "per_chat_burst": 100_000, "group_per_minute": 100_000}


class RoutedAPI(FakeBotAPI):
    """The fake Bot API, handing each pre-checkout answer to the user waiting for it and keeping the codes each
    chat received."""

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        self.answers: dict[str, asyncio.Future[bool]] = {}
        self.chat_codes: dict[int, list[str]] = defaultdict(list)

    def _answered(self, call: Call) -> None:
        if call.status != 200:
            return
        if call.method == "answerPreCheckoutQuery":
            fut = self.answers.pop(call.params.get("pre_checkout_query_id", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(bool(call.params.get("ok")))
        elif call.method == "sendMessage" and isinstance(call.params.get("chat_id"), int):
            self.chat_codes[call.params["chat_id"]] += SPOILER.findall(call.params.get("text", ""))


class Users:
    def __init__(self, api: RoutedAPI, base: str, http: aiohttp.ClientSession, think: float,
                 reveal: float) -> None:
        self.api, self.base, self.http, self.think, self.reveal = api, base, http, think, reveal
        self.latencies: list[float] = []
        self.by_route: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.delivered: dict[str, list[str]] = {}  # order id -> revealed codes
        self.lost: list[str] = []

    async def tap(self) -> None:
        if self.think:
            await asyncio.sleep(self.think * random.uniform(0.5, 1.5))

    async def call(self, method: str, path: str, auth: str, body: Any = None) -> tuple[int, Any]:
        t0 = time.perf_counter()
        async with self.http.request(method, self.base + "/app/api" + path, headers={"Authorization": auth},
                                     json=body) as r:
            answer = await r.json()
        took = time.perf_counter() - t0
        self.latencies.append(took)
        route = f"{method} {re.sub(r'/[0-9A-Z]{6,}', '/ID', path.split('?')[0])}"
        self.by_route[route].append(took)
        if r.status >= 400:
            self.errors[f"{path.split('/')[1]}:{answer.get('error', {}).get('code', r.status)}"] += 1
        return r.status, answer

    async def user(self, uid: int, purchases: int) -> None:
        tg_user = self.api.user(uid, language_code="en")
        auth = "tma " + sign_init_data({"auth_date": str(int(time.time())),
                                        "user": json.dumps({"id": uid, "first_name": "U", "language_code": "en"})},
                                       TOKEN)
        await self.tap()  # the users open the shop over a moment, not all in the same millisecond
        await self.call("GET", "/me", auth)
        _, catalog = await self.call("GET", "/catalog", auth)
        await self.tap()
        await self.call("GET", "/search?q=bench", auth)
        pid = catalog["products"][0]["id"]
        await self.tap()
        await self.call("GET", f"/products/{pid}", auth)
        for _ in range(purchases):
            await self.tap()
            status, placed = await self.call("POST", "/orders", auth, {"product_id": pid, "qty": 1})
            if status != 201:
                continue
            oid, link = placed["order"]["id"], placed["pay"]["url"]
            pre, paid = self.api.pay_link_updates(tg_user, link, charge_id=f"charge-{oid}")
            answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self.api.answers[pre["pre_checkout_query"]["id"]] = answered
            self.api.push_update(pre)
            if not await asyncio.wait_for(answered, 30):
                self.errors["pre_checkout_refused"] += 1
                continue
            self.api.push_update(paid)
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while True:
                await asyncio.sleep(POLL)
                status, seen = await self.call("GET", f"/orders/{oid}", auth)
                if status == 200 and seen["order"]["status"] == "delivered":
                    break
                if time.monotonic() > deadline:
                    self.lost.append(oid)
                    break
            if oid in self.lost:
                continue
            if random.random() >= self.reveal:
                self.delivered[oid] = []
                continue
            await self.tap()
            status, revealed = await self.call("POST", f"/orders/{oid}/reveal", auth)
            self.delivered[oid] = revealed.get("codes", []) if status == 200 else []


async def first_load_kb(http: aiohttp.ClientSession, base: str) -> float | None:
    """The page at /app/ and the same-origin files it references, gzip -9 compressed; None without a page."""
    async with http.get(base + "/app/") as r:
        if r.status != 200:
            return None
        html = await r.read()
    total = len(gzip.compress(html, 9))
    for path in dict.fromkeys(ASSET.findall(html.decode("utf-8", "replace"))):
        async with http.get(base + path) as r:
            if r.status == 200:
                total += len(gzip.compress(await r.read(), 9))
    return round(total / 1024, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(base: str, store: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/app/api/me") as r:
                    if r.status == 401:
                        return
            if store.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the store did not start: {store.stderr.read()[-1000:] if store.stderr else ''}")
            await asyncio.sleep(0.2)


def cli(cfg: Path, *args: str) -> None:
    out = subprocess.run([sys.executable, "run.py", "--config", str(cfg), *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise SystemExit(f"run.py {' '.join(args)} failed: {out.stderr.strip()[-500:]}")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))] * 1000, 1) if values else 0.0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--purchases", type=int, default=3, help="purchases per user")
    ap.add_argument("--think", type=float, default=0.5, help="seconds a user takes between two taps (0: none)")
    ap.add_argument("--reveal", type=float, default=1.0, help="the share of purchases whose codes the page shows")
    ap.add_argument("--postgres", default="", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    wanted = args.users * args.purchases
    with temp_dir("bench-webapp-", args.keep) as d:
        async with (postgres_database(args.postgres) if args.postgres else contextlib.nullcontext()) as pg, \
                RoutedAPI() as api:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            data = config_data(pg or sqlite_url(d), max_open_holds=3)
            data["catalog"][0].update(stars=STARS, title="Bench card")
            data["telegram"] = {"token": TOKEN, "api_base": api.base, "limits": UNPACED}
            data["server"] = {"host": "127.0.0.1", "port": port, "public_url": base}
            cfg = d / "config.yaml"
            cfg.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
            log(f"importing {wanted + 100} codes")
            await asyncio.to_thread(cli, cfg, "codes", "import", SKU, str(write_code_file(d / "codes.txt",
                                                                                       wanted + 100)))
            store = subprocess.Popen([sys.executable, "run.py", "--config", str(cfg)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                await wait_up(base, store)
                log(f"{args.users} users x {args.purchases} purchases")
                conn = aiohttp.TCPConnector(limit=args.users)
                async with aiohttp.ClientSession(connector=conn) as http:
                    users = Users(api, base, http, args.think, args.reveal)
                    t0 = time.perf_counter()
                    await asyncio.gather(*[users.user(10_000 + i, args.purchases) for i in range(args.users)])
                    wall = time.perf_counter() - t0
                    page_kb = await first_load_kb(http, base)
            finally:
                store.send_signal(signal.SIGTERM)
                try:
                    store.wait(60)
                except subprocess.TimeoutExpired:
                    store.kill()
    per_order = Counter(c for codes in users.delivered.values() for c in set(codes))
    in_chats = Counter(c for codes in api.chat_codes.values() for c in set(codes))  # a code in two users' chats
    duplicates = sum(1 for n in per_order.values() if n > 1) + sum(1 for n in in_chats.values() if n > 1)
    delivered = len(users.delivered)
    figures = {
        "database": "postgresql" if args.postgres else "sqlite",
        "users": args.users, "think_s": args.think, "purchases": wanted, "delivered": delivered,
        "seconds": round(wall, 2),
        "api_requests": len(users.latencies), "api_p50_ms": percentile(users.latencies, 0.5),
        "api_p99_ms": percentile(users.latencies, 0.99),
        "purchases_per_s": round(delivered / wall, 1) if wall else 0.0,
        "p99_ms_by_route": {r: percentile(v, 0.99) for r, v in sorted(users.by_route.items())},
        "duplicates": duplicates, "lost": len(users.lost), "errors": dict(users.errors),
        "first_load_kb": page_kb,
    }
    figures["ok"] = (figures["api_p99_ms"] <= 100 and duplicates == 0 and not users.lost and delivered == wanted
                     and (page_kb is None or page_kb <= 150))
    emit(figures)


if __name__ == "__main__":
    asyncio.run(main())
