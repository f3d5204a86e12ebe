#!/usr/bin/env python3
"""WeChat end to end: users messaging the real /wechat callback, then a storm of WeChat Pay notices.

    .venv/bin/python bench/wechat.py [--users 200] [--think 2.0] [--ramp 2.0] [--notices 1000] [--repeats 0.2]

The store is the real one: App on a fresh SQLite file, the aiohttp server with /wechat and
/wechat/pay/notify, the WeChat storefront (customer flow, wechatpy clients in threads, the QR drawing process,
the outbox). WeChat's API (tests/fake_wechat_api.py), WeChat Pay (tests/fake_wechat_pay.py) and the users run in
a second process, as WeChat's servers do not run on the store's machine.

1. Replies: `--users` users in conversation at the same time, each going menu -> catalogue -> product -> buy
   (4 signed XML messages), `--think` seconds (±50%) between a reply and their next message, first messages
   spread over `--ramp` seconds. A buy also starts the unified order, the QR image, its upload and two
   customer-service messages in the background, while the other users are being answered. Latency: from
   posting a message to having its passive reply. Target: p99 <= 200 ms (WeChat gives up at 5 s). Then a
   burst: every user sends one message at the same instant (reported, no target).
2. Paid-notice storm: `--notices` signed notices at once to /wechat/pay/notify, a `--repeats` share of them
   re-sends of notices already in the storm (as WeChat does when an answer is slow), for orders held
   beforehand (not timed). Then the outbox sends the codes by customer-service message. Checks: every notice
   answered SUCCESS, `deliveries` (code messages sent) equal to the distinct paid orders, `duplicates` (codes
   sent more than once) 0.

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import multiprocessing
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from app import App  # noqa: E402
from app.process import settle_heap  # noqa: E402
from bench.common import emit, log, temp_dir  # noqa: E402
from bots.http import HttpServer  # noqa: E402
from config.settings import parse_settings  # noqa: E402
from core.models import Buyer  # noqa: E402
from core.supply import import_codes  # noqa: E402
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer  # noqa: E402
from tests.fake_wechat_pay import FakeWeChatPay  # noqa: E402

APPID, SECRET, TOKEN = "wx_bench_appid", "bench_secret", "bench_token"
MCH_ID, PAY_KEY = "1900000109", "192006250b4c09247ec02edce69f6a2d"
SKU = "BENCH-WX"
CODE = re.compile(r"WXB-[0-9]{6}")
BUY_REPLY = "库存已为您锁定"
BOUGHT: dict[str, float] = {}  # WeChat's side: openid -> when the reply to Buy came (time.monotonic)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else 0.0


def settings_for(directory: Path, api_base: str, pay_base: str) -> Any:
    return parse_settings({
        "store": {"name": "Bench Shop", "hold_minutes": 60, "max_open_holds": 3},
        "database": {"url": f"sqlite+aiosqlite:///{directory / 'store.db'}"},
        "vault": {"key_file": str(directory / "vault.key")},
        "logging": {"level": "WARNING"},
        "wechat": {"appid": APPID, "token": TOKEN, "secret": SECRET, "api_base": api_base,
                   "pay": {"mch_id": MCH_ID, "api_key": PAY_KEY, "api_base": pay_base,
                           "notify_url": "https://bench.example.com/wechat/pay/notify"}},
        "catalog": [{"sku": SKU, "title": {"en": "Bench card", "zh_CN": "测试卡"}, "price": 100, "max_qty": 1}],
    }, directory, env={})


async def replies(wx: WeChatServer, users: int, think: float, ramp: float, prefix: str = "o-bench"
                  ) -> tuple[list[float], int]:
    """Every user: menu -> catalogue -> product -> buy, `think` seconds between a reply and the next message,
    the users' first messages spread over `ramp` seconds. Returns reply latencies (ms) and wrong replies."""
    latencies: list[float] = []
    wrong = 0
    rng = random.Random(7)

    async def say(openid: str, text: str, expect: str) -> None:
        nonlocal wrong
        start = time.perf_counter()
        reply = await wx.text(openid, text)
        latencies.append((time.perf_counter() - start) * 1000)
        if expect not in reply:
            wrong += 1
        elif expect == BUY_REPLY:
            BOUGHT[openid] = time.monotonic()

    async def user(i: int) -> None:
        openid = f"{prefix}-{i:05d}"
        await asyncio.sleep(ramp * i / users)
        for text, expect in (("你好", "回复 1"), ("商品", "测试卡"), ("1", "购买"), ("1", BUY_REPLY)):
            await say(openid, text, expect)
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(user(i) for i in range(users)))
    return latencies, wrong


async def burst(wx: WeChatServer, users: int) -> list[float]:
    """Every user sends one message at the same instant (no think time): the queueing worst case."""
    async def one(i: int) -> float:
        start = time.perf_counter()
        await wx.text(f"o-burst-{i:05d}", "帮助")
        return (time.perf_counter() - start) * 1000
    return list(await asyncio.gather(*(one(i) for i in range(users))))


async def storm(pay: FakeWeChatPay, url: str, orders: list[tuple[str, int]], notices: int) -> tuple[int, float]:
    """Every notice at once: one per order, the rest re-sends of some of them. Returns (refused, seconds)."""
    bodies = [pay.notify_xml(oid, total_fee=amount, transaction_id=f"42000{i:023d}")
              for i, (oid, amount) in enumerate(orders)]
    rng = random.Random(4)
    bodies += [rng.choice(bodies) for _ in range(notices - len(orders))]  # WeChat's re-sends
    rng.shuffle(bodies)
    refused = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def post(body: bytes) -> None:
            nonlocal refused
            async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as resp:
                text = await resp.text()
            if resp.status != 200 or "SUCCESS" not in text:
                refused += 1
        start = time.perf_counter()
        await asyncio.gather(*(post(b) for b in bodies))
    return refused, time.perf_counter() - start


def code_messages(api: FakeWeChatAPI) -> tuple[int, int, int, list[float]]:
    """(customer-service messages carrying codes, codes sent more than once, QR images sent, ms from each
    Buy reply to its QR image)."""
    texts = [c.body["text"]["content"] for c in api.sends() if c.body.get("msgtype") == "text"]
    deliveries = [t for t in texts if CODE.search(t)]
    codes = Counter(c for t in deliveries for c in CODE.findall(t))
    images = [c for c in api.sends() if c.body.get("msgtype") == "image"]
    qr_ms = [(c.at - BOUGHT[c.body["touser"]]) * 1000 for c in images if c.body["touser"] in BOUGHT]
    return len(deliveries), sum(n - 1 for n in codes.values() if n > 1), len(images), qr_ms


def wechat_side(conn: Any) -> None:
    """The second process: WeChat's servers (API, Pay) and its users, driven by the store's process."""
    asyncio.run(_wechat_side(conn))


async def _wechat_side(conn: Any) -> None:
    loop = asyncio.get_running_loop()
    async with FakeWeChatAPI(APPID, SECRET) as api:
        pay = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
        conn.send({"api": api.base, "pay": pay.api_base})
        wx: WeChatServer | None = None
        try:
            while True:
                cmd = await loop.run_in_executor(None, conn.recv)
                do = cmd["do"]
                if do == "stop":
                    break
                if wx is None:
                    wx = WeChatServer(cmd["store"] + "/wechat", TOKEN, APPID)
                    await wx.__aenter__()
                    await wx._session.close()  # noqa: SLF001 - one without a connection cap instead
                    wx._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # noqa: SLF001
                if do == "users":
                    conn.send(await replies(wx, cmd["users"], cmd["think"], cmd["ramp"], cmd["prefix"]))
                elif do == "burst":
                    conn.send(await burst(wx, cmd["users"]))
                elif do == "storm":
                    conn.send(await storm(pay, cmd["store"] + "/wechat/pay/notify", cmd["orders"], cmd["notices"]))
                elif do == "sent":
                    conn.send(code_messages(api))
        finally:
            if wx is not None:
                await wx.__aexit__()
            await pay.stop()


class Side:
    """The store's end of the pipe to the WeChat side."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=wechat_side, args=(child,), daemon=True)
        self.proc.start()
        self.store = ""

    async def ask(self, **cmd: Any) -> Any:
        loop = asyncio.get_running_loop()
        if "do" in cmd:
            cmd["store"] = self.store
            self.conn.send(cmd)
        return await loop.run_in_executor(None, self.conn.recv)

    def close(self) -> None:
        try:
            self.conn.send({"do": "stop"})
        finally:
            self.proc.join(30)


async def run(args: argparse.Namespace) -> dict[str, object]:
    logging.basicConfig(level=logging.ERROR)
    side = Side()
    try:
        bases = await side.ask()
        with temp_dir("bench-wechat-") as directory:
            settings = settings_for(directory, bases["api"], bases["pay"])
            app = await App.open(settings)
            server = HttpServer("127.0.0.1", 0)
            runtime = app.add_wechat(server)
            try:
                n_codes = args.users + args.notices + 10
                await import_codes(app.db.uow, app.vault, app.clock, SKU,
                                   [f"WXB-{i:06d}\n".encode() for i in range(n_codes)])
                await app.shop.start()
                await runtime.start()
                await server.start()
                settle_heap()  # as run.py does once the store serves
                side.store = f"http://127.0.0.1:{server.port}"
                log(f"store on {side.store}; {n_codes} codes; WeChat's side in process {side.proc.pid}")
                await side.ask(do="users", users=5, think=0, ramp=0, prefix="o-warm")  # compile, token, threads
                await runtime.idle()
                log(f"replies: {args.users} users in conversation at once, 4 messages each, think time "
                    f"{args.think} s")
                start = time.perf_counter()
                latencies, wrong = await side.ask(do="users", users=args.users, think=args.think, ramp=args.ramp,
                                                  prefix="o-bench")
                reply_seconds = time.perf_counter() - start
                await runtime.idle()
                burst_ms = await side.ask(do="burst", users=args.users)
                _, _, qr_images, qr_ms = await side.ask(do="sent")
                log(f"replies: p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, "
                    f"{qr_images} QR images sent (p99 {pct(qr_ms, 99):.0f} ms after the reply); a burst of "
                    f"{args.users} at once: p99 {pct(burst_ms, 99):.1f} ms")
                distinct = args.notices - int(args.notices * args.repeats)
                product = await app.shop.product_by_sku(SKU)
                assert product is not None
                held = await asyncio.gather(*(app.shop.reserve(Buyer("wechat", f"o-storm-{i:05d}"), product.id, 1,
                                                               "zh_CN", f"o-storm-{i:05d}") for i in range(distinct)))
                log(f"storm: {args.notices} notices at once for {distinct} orders ({args.repeats:.0%} re-sends)")
                start = time.perf_counter()
                refused, storm_seconds = await side.ask(do="storm", orders=[(o.id, o.amount) for o in held],
                                                        notices=args.notices)
                while True:  # the outbox sends the codes
                    await app.shop.dispatcher.drain()
                    deliveries, duplicates, _, _ = await side.ask(do="sent")
                    if deliveries >= distinct or time.perf_counter() - start > 120:
                        break
                    await asyncio.sleep(0.05)
                delivered_seconds = time.perf_counter() - start
                log(f"storm: answered in {storm_seconds:.2f} s, {deliveries} deliveries in "
                    f"{delivered_seconds:.2f} s, {duplicates} duplicates, {refused} refused")
            finally:
                await server.stop()
                await runtime.stop()
                await app.close()
    finally:
        side.close()
    p99 = pct(latencies, 99)
    return {
        "users": args.users, "messages": len(latencies),
        "reply_ms_p50": round(pct(latencies, 50), 1), "reply_ms_p99": round(p99, 1),
        "reply_ms_max": round(max(latencies), 1), "wrong_replies": wrong,
        "messages_per_s": round(len(latencies) / reply_seconds, 1), "qr_images": qr_images,
        "qr_ms_p50": round(pct(qr_ms, 50), 1), "qr_ms_p99": round(pct(qr_ms, 99), 1),
        "burst_ms_p50": round(pct(burst_ms, 50), 1), "burst_ms_p99": round(pct(burst_ms, 99), 1),
        "notices": args.notices, "distinct_orders": distinct, "refused_notices": refused,
        "notices_per_s": round(args.notices / storm_seconds, 1),
        "deliveries": deliveries, "duplicates": duplicates,
        "seconds_to_all_delivered": round(delivered_seconds, 2),
        "ok": p99 <= 200 and wrong == 0 and deliveries == distinct and duplicates == 0 and refused == 0
              and qr_images == args.users + 5,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--notices", type=int, default=1000)
    ap.add_argument("--think", type=float, default=2.0, help="seconds a user takes between a reply and the "
                    "next message, ±50%% (2.0)")
    ap.add_argument("--ramp", type=float, default=2.0, help="the users' first messages spread over these seconds")
    ap.add_argument("--repeats", type=float, default=0.2, help="share of the notices that are re-sends (0.2)")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the store's process to FILE")
    args = ap.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        figures = profiler.runcall(asyncio.run, run(args))
        profiler.dump_stats(args.profile)
    else:
        figures = asyncio.run(run(args))
    emit(figures)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
