#!/usr/bin/env python3
"""Does the cost of a claim grow with the pool? Allocation rate with a small pool vs a large pool.

    .venv/bin/python bench/pool_scaling.py [--buyers 500] [--small 1000] [--large 1000000] [--repeat 3]

Same path as bench/allocation.py (reserve -> pay -> outbox delivery recorded by the notifier) on SQLite files.
The small store is fresh for each round (pool = --small at the start); the large pool is imported once with
core.supply.import_codes (setup, not timed) and each round reopens the store on it. Rounds alternate
small/large; the best of each is reported. Target: ratio_small_over_large <= 1.5. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SKU, emit, log, make_settings, temp_dir
from bench.shop import RecordingNotifier, import_pool, open_app, run_buyers, warm_up


async def build_pool(directory: Path, n: int, batch_size: int) -> None:
    app = await open_app(make_settings(directory, max_qty=1), RecordingNotifier())
    try:
        t = time.perf_counter()
        await import_pool(app, n, batch_size=batch_size)
        log(f"pool of {n} codes imported in {time.perf_counter() - t:.1f}s (setup, not timed)")
    finally:
        await app.close()


async def measure(directory: Path, label: str, buyers: int, warmup: int, round_no: int) -> dict[str, object]:
    notifier = RecordingNotifier()
    app = await open_app(make_settings(directory, max_qty=1), notifier)
    try:
        product = await app.shop.product_by_sku(SKU)
        assert product is not None
        await app.shop.start()
        await warm_up(app, notifier, product.id, warmup)
        r = await run_buyers(app, notifier, product.id, buyers, tag=f"{label}{round_no}")
        log(f"{label}: {r.delivered} delivered in {r.seconds:.3f}s = {r.orders_per_s:.0f} orders/s "
            f"(p50 {r.pct(50):.0f} ms, p99 {r.pct(99):.0f} ms){' errors ' + str(r.errors) if r.errors else ''}")
    finally:
        await app.close()
    return {"orders_per_s": r.orders_per_s, "delivered": r.delivered, "duplicates": notifier.duplicates(),
            "errors": r.errors}


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    small_runs: list[dict[str, object]] = []
    large_runs: list[dict[str, object]] = []
    with temp_dir("bench-pool-large-") as large_dir:
        await build_pool(large_dir, args.large, args.import_batch)
        for k in range(args.repeat):
            log(f"--- round {k + 1}/{args.repeat}")
            with temp_dir("bench-pool-small-") as small_dir:
                await build_pool(small_dir, args.small, args.import_batch)
                small_runs.append(await measure(small_dir, "small", args.buyers, args.warmup, k))
            large_runs.append(await measure(large_dir, "large", args.buyers, args.warmup, k))
        size_mb = sum(f.stat().st_size for f in large_dir.iterdir() if f.name.startswith("store.db")) / 2**20
    small = max(float(r["orders_per_s"]) for r in small_runs)  # type: ignore[arg-type]
    large = max(float(r["orders_per_s"]) for r in large_runs)  # type: ignore[arg-type]
    ratio = small / large if large else float("inf")
    duplicates = sum(int(r["duplicates"]) for r in small_runs + large_runs)  # type: ignore[call-overload]
    delivered = min(int(r["delivered"]) for r in small_runs + large_runs)  # type: ignore[call-overload]
    log(f"best: small {small:.0f} orders/s, large {large:.0f} orders/s, ratio {ratio:.2f} (target <= 1.5)")
    return {
        "bench": "pool_scaling", "backend": "sqlite", "buyers": args.buyers, "small_pool": args.small,
        "large_pool": args.large, "small_orders_per_s": round(small, 1), "large_orders_per_s": round(large, 1),
        "ratio_small_over_large": round(ratio, 3),
        "small_runs": [round(float(r["orders_per_s"]), 1) for r in small_runs],  # type: ignore[arg-type]
        "large_runs": [round(float(r["orders_per_s"]), 1) for r in large_runs],  # type: ignore[arg-type]
        "duplicates": duplicates, "delivered_min": delivered, "large_db_mb": round(size_mb, 1),
        "warmup": args.warmup, "repeat": args.repeat,
        "ok": bool(ratio <= 1.5 and duplicates == 0 and delivered == args.buyers),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=500, help="concurrent buyers per measurement (default 500)")
    ap.add_argument("--small", type=int, default=1000, help="small pool size (default 1000)")
    ap.add_argument("--large", type=int, default=1_000_000, help="large pool size (default 1000000)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best of each size is reported (default 3)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed orders before each measurement (default 20)")
    ap.add_argument("--import-batch", type=int, default=20_000, help="import_codes batch size for setup")
    args = ap.parse_args()
    if args.small < args.buyers + args.warmup:
        ap.error("--small must hold at least --buyers + --warmup codes")
    if args.large < (args.buyers + args.warmup) * args.repeat:
        ap.error("--large must hold the codes of every round")
    emit(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
