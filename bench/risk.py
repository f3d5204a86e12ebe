#!/usr/bin/env python3
"""What the rules and risk check add per order at 1,000 concurrent orders.

    .venv/bin/python bench/risk.py [--orders 1000] [--rounds 3] [--postgres URL]

The real store (app.App on a fresh SQLite file, or a fresh PostgreSQL database with --postgres), default `risk:`
policy, one `code` product. Each round: --orders concurrent orders, of which 50 come from one scalper (one user,
50 rapid reserve -> pay attempts, one after the other) and the rest from ordinary buyers (one reserve -> pay each),
all started at once. The guard (core/risk/guard.py) records, per group-commit batch, the time it spent outside the order
book's own work (its reads, scoring, and the order_risk writes); every order in a batch waited that long, so that is
the latency the check added to it (`risk_ms_p99`; `risk_cpu_ms_p99` the CPU time of the event loop's thread in
the same spans, which other processes on the machine do not inflate; `risk_ms_amortized_p99` divides the wall
time by the batch's size). Also the
same run with `risk.enabled: false` for the throughput either way (the two alternate in order round by round);
`risk_throughput_ratio` is the median round with the check over the median without (target: at least 0.9; a round
lasts a fifth of a second, so one lucky or unlucky round would decide a best-against-best figure, which is printed
too as `risk_throughput_ratio_best`).
After a warm-up of 100 orders the heap is settled as run.py does when the store starts serving.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.process import settle_heap
from bench.common import CHANNEL, PROVIDER, SKU, config_data, emit, log, postgres_database, sqlite_url, temp_dir
from bench.shop import RecordingNotifier, import_pool, open_app
from config.settings import parse_settings
from core.errors import StoreError
from core.models import Buyer
from core.orders import PaymentNotice

SCALPER_ORDERS = 50


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def one_round(directory: Path, url: str, orders: int, enabled: bool) -> dict[str, Any]:
    data = config_data(url, max_open_holds=3)
    data["risk"] = {"enabled": enabled}
    settings = parse_settings(data, directory, env={})
    notifier = RecordingNotifier()
    app = await open_app(settings, notifier)
    try:
        await import_pool(app, orders + 300)
        await app.shop.start()
        product = await app.shop.product_by_sku(SKU)
        assert product is not None
        run = secrets.token_hex(4)
        ordinary: Counter[str] = Counter()
        scalper: Counter[str] = Counter()

        async def buy(b: Buyer, tally: Counter[str], i: int) -> None:
            try:
                order = await app.shop.reserve(b, product.id, 1, "en", chat_id=b.external_id)
                res = await app.shop.pay(PaymentNotice(order.id, PROVIDER, f"tx-{run}-{b.external_id}-{i}",
                                                       order.amount, order.currency, payer=b))
                tally[res.outcome] += 1
            except StoreError as exc:
                tally[exc.code.value] += 1

        async def scalp() -> None:
            b = Buyer(CHANNEL, f"scalper-{run}")
            for i in range(SCALPER_ORDERS):
                await buy(b, scalper, i)

        # Warm-up (statement compilation, connections): not measured. Then the heap is settled as run.py does
        # once the store serves (app/process.py: gc.freeze, a larger young generation).
        await asyncio.gather(*[buy(Buyer(CHANNEL, f"warm-{run}-{i}"), Counter(), 0) for i in range(100)])
        settle_heap()
        app.shop.guard.timings = []
        batches0 = app.shop.committer.batches
        t0 = time.perf_counter()
        crowd = asyncio.gather(*[buy(Buyer(CHANNEL, f"o-{run}-{i}"), ordinary, 0)
                                 for i in range(orders - SCALPER_ORDERS)])
        scalping = asyncio.ensure_future(scalp())
        await crowd
        seconds = time.perf_counter() - t0  # the ordinary buyers' orders (the scalper's 50 are one after another)
        await scalping
        timings, app.shop.guard.timings = app.shop.guard.timings, None
        per_order_ms = [s * 1000 for n, s, _ in timings for _ in range(n)]
        cpu_ms = [c * 1000 for n, _, c in timings for _ in range(n)]
        amortized_ms = [s * 1000 / n for n, s, _ in timings for _ in range(n)]
        return {"seconds": seconds, "orders_per_s": (orders - SCALPER_ORDERS) / seconds, "ordinary": dict(ordinary),
                "scalper": dict(scalper), "risk_ms": per_order_ms, "cpu_ms": cpu_ms, "amortized_ms": amortized_ms,
                "batches": app.shop.committer.batches - batches0, "reserve_batches": len(timings)}
    finally:
        await app.close()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--postgres", default="")
    args = ap.parse_args()
    on: list[dict[str, Any]] = []
    off: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = ((True, on), (False, off)) if r % 2 == 0 else ((False, off), (True, on))
        for enabled, out in order:
            with temp_dir("bench-risk-") as d:
                if args.postgres:
                    async with postgres_database(args.postgres) as url:
                        res = await one_round(d, url, args.orders, enabled)
                else:
                    res = await one_round(d, sqlite_url(d), args.orders, enabled)
            out.append(res)
            log(f"round {r + 1} risk {'on ' if enabled else 'off'}: {res['orders_per_s']:.0f} orders/s, "
                f"ordinary {res['ordinary']}, scalper {res['scalper']}, reserve batches {res['reserve_batches']}"
                + (f", risk p99 {pct(res['risk_ms'], 99):.2f} ms" if enabled else ""))
    risk_ms = [x for res in on for x in res["risk_ms"]]
    amortized = [x for res in on for x in res["amortized_ms"]]
    cpu = [x for res in on for x in res["cpu_ms"]]
    ordinary_n = args.orders - SCALPER_ORDERS
    false_challenges = sum(res["ordinary"].get("challenge_required", 0) for res in on)
    false_other = sum(res["ordinary"].get(k, 0) for res in on for k in ("under_review", "risk_refused"))
    ordinary_delivered = min(res["ordinary"].get("delivered", 0) for res in on)
    scalper_passed = max(res["scalper"].get("delivered", 0) for res in on)
    p99 = pct(risk_ms, 99)
    figures = {
        "orders": args.orders, "rounds": args.rounds, "database": "postgresql" if args.postgres else "sqlite",
        "risk_ms_p50": round(pct(risk_ms, 50), 3), "risk_ms_p99": round(p99, 3),
        "risk_cpu_ms_p50": round(pct(cpu, 50), 3), "risk_cpu_ms_p99": round(pct(cpu, 99), 3),
        "risk_ms_amortized_p99": round(pct(amortized, 99), 4), "load_avg_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "false_challenges": false_challenges, "false_reviews_or_refusals": false_other,
        "ordinary_delivered": ordinary_delivered, "ordinary_buyers": ordinary_n,
        "scalper_orders_passed": scalper_passed, "scalper_attempts": SCALPER_ORDERS,
        "scalper_outcomes": on[-1]["scalper"],
        "orders_per_s_risk_on": round(statistics.median(res["orders_per_s"] for res in on), 1),
        "orders_per_s_risk_off": round(statistics.median(res["orders_per_s"] for res in off), 1),
        "orders_per_s_risk_on_runs": [round(res["orders_per_s"], 1) for res in on],
        "orders_per_s_risk_off_runs": [round(res["orders_per_s"], 1) for res in off],
        "reserve_batches": sum(res["reserve_batches"] for res in on),
    }
    # What the check costs in throughput, within this run (at least 0.9: the check must not cost a tenth).
    figures["risk_throughput_ratio"] = round(figures["orders_per_s_risk_on"] / figures["orders_per_s_risk_off"], 3)
    figures["risk_throughput_ratio_best"] = round(max(res["orders_per_s"] for res in on)
                                                  / max(res["orders_per_s"] for res in off), 3)
    figures["ok"] = (p99 <= 5.0 and false_challenges == 0 and false_other == 0 and ordinary_delivered == ordinary_n
                     and scalper_passed <= 6 and figures["risk_throughput_ratio"] >= 0.9)
    emit(figures)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
