#!/usr/bin/env python3
"""Scaling out: purchases per second with 1, 2 and 3 store processes on PostgreSQL + Redis, through Telegram
webhooks.

    .venv/bin/python bench/scale.py [--buyers 400] [--processes 1,2,3] [--limit 1000] [--library ptb|aiogram]
                                    [--repeat 1] [--postgres URL]

For each number of processes, a fresh cluster (tests/multiprocess.py): a new PostgreSQL database, a private
redis-server, N `run.py` processes in webhook mode (same database, Redis URL and prefix, bot token, vault keys),
and the fake Bot API (tests/fake_bot_api/) POSTing each update to the processes in turn, as a load balancer would.
`--warmup` buyers first (untimed: first-use costs), then `--buyers` buyers tap Buy at once, each for a code of
its own, pay in Stars (pre_checkout_query, successful_payment) and wait for the code message. purchases_per_s:
codes delivered / seconds from the first tap to the last code.

`--limit` is telegram.limits.overall_per_second of every process (shared through Redis): high, so Telegram's
rules do not set the pace here; max_send_rate is the most messages the fake received in any one second, reported
against it. CPU seconds per purchase of each part (the stores, the driver: this process with the fake Bot API and
the buyers, redis-server, every postgres process on the machine) and the machine's busy cores during the timed
window say what the machine spent the time on; `scaling_ceiling` is all the cores over the cores the one-process
run kept busy, the most scaling could give on this machine. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, log, temp_dir  # noqa: E402
from tests.multiprocess import Cluster, proc_cpu  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


def postgres_cpu() -> float:
    """CPU seconds of every postgres process on the machine (the server is shared: an estimate)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += proc_cpu(int(entry.name))
            except OSError:
                continue
    return total


async def one_run(n: int, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    codes = args.buyers + args.warmup
    async with Cluster(directory, processes=n, codes=codes, overall_per_second=args.limit,
                       admin_url=args.postgres, delivery_timeout=60, library=args.library) as cluster:
        await cluster.race(args.warmup, args.warmup, first=900_000)
        log(f"{n} process(es): {args.buyers} buyers at once")
        mark = cluster.api.mark()
        stores0 = sum(s.cpu_seconds() for s in cluster.stores)
        redis0 = proc_cpu(cluster.redis.proc.pid) if cluster.redis.proc else 0.0
        pg0, me0, busy0 = postgres_cpu(), time.process_time(), machine_busy()
        result = await cluster.race(args.buyers, args.buyers, first=100_000)
        busy1 = machine_busy()
        cpu = {"stores": sum(s.cpu_seconds() for s in cluster.stores) - stores0,
               "driver": time.process_time() - me0,
               "redis": (proc_cpu(cluster.redis.proc.pid) if cluster.redis.proc else 0.0) - redis0,
               "postgres": postgres_cpu() - pg0}
        rates = cluster.api.send_rates(since=mark)
        sent = cluster.api.code_messages(mark)
        figures = result.figures()
        delivered = len(result.codes())
        holders: dict[str, set[int]] = {}
        for chat, code in sent:
            holders.setdefault(code, set()).add(chat)
        out = {"processes": n, "purchases_per_s": figures["purchases_per_s"], "seconds": figures["seconds"],
               "delivered": delivered, "lost": args.buyers - delivered,
               "duplicates": sum(1 for h in holders.values() if len(h) > 1) + sum(k - 1 for k in sent.values()),
               "max_send_rate": rates.overall, "max_send_rate_per_chat": rates.per_chat,
               "errors": figures["errors"],
               "cpu_ms_per_purchase": {k: round(v * 1000 / max(1, delivered), 2) for k, v in cpu.items()},
               "load_average_1m": round(os.getloadavg()[0], 1),
               "busy_cores": round((busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]) * os.cpu_count(), 2)}
        log(f"{n} process(es): {out}")
        return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "scale", "buyers": args.buyers, "limit": args.limit, "library": args.library,
                           "cores": os.cpu_count()}
    runs: dict[int, dict[str, Any]] = {}
    with temp_dir("bench-scale-") as d:
        for n in args.processes:
            best: dict[str, Any] | None = None
            for r in range(args.repeat):
                run = await one_run(n, args, d / f"p{n}r{r}")
                if best is None or run["purchases_per_s"] > best["purchases_per_s"]:
                    best = run
            assert best is not None
            runs[n] = best
    for n, run in runs.items():
        out[f"purchases_per_s_{n}"] = run["purchases_per_s"]
    if 1 in runs:
        for n in runs:
            if n > 1 and runs[1]["purchases_per_s"]:
                out[f"scaling_{n}_over_1"] = round(runs[n]["purchases_per_s"] / runs[1]["purchases_per_s"], 2)
        # The most any number of processes could give here, doing the same work per purchase: all the cores over
        # the cores the one-process run kept busy (its store, the driver, PostgreSQL and Redis).
        if runs[1]["busy_cores"]:
            out["scaling_ceiling"] = round((os.cpu_count() or 1) / runs[1]["busy_cores"], 2)
    out["duplicates"] = sum(r["duplicates"] for r in runs.values())
    out["lost"] = sum(r["lost"] for r in runs.values())
    out["max_send_rate"] = max(r["max_send_rate"] for r in runs.values())
    out["runs"] = runs
    out["ok"] = bool(out["duplicates"] == 0 and out["lost"] == 0 and out["max_send_rate"] <= args.limit
                     and not any(r["errors"] for r in runs.values()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=400, help="buyers in the timed race, a code each (400)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed buyers first (20)")
    ap.add_argument("--processes", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 3],
                    help="numbers of store processes to measure (1,2,3)")
    ap.add_argument("--limit", type=float, default=1000.0,
                    help="telegram.limits.overall_per_second of the shop (1000: not the bottleneck)")
    ap.add_argument("--library", choices=["ptb", "aiogram"], default="ptb",
                    help="the processes' Telegram library (ptb: starts in a fraction of aiogram's CPU)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per number of processes; the best is kept (1)")
    ap.add_argument("--postgres", default=os.environ.get("STORE_TEST_POSTGRES_URL", DEFAULT_PG),
                    help="the server to make a fresh database on")
    args = ap.parse_args()
    emit(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
