#!/usr/bin/env python3
"""The B2B API under load: concurrent reseller clients creating orders of 10 codes over signed HTTP.

    .venv/bin/python bench/b2b_api.py [--clients 50] [--orders 20] [--qty 10] [--postgres URL] [--keep]

The store is a real `run.py` process (`server.api: true`) on a fresh SQLite file (or a fresh PostgreSQL database
with --postgres). Set-up, not timed, through the CLI as a merchant would: `codes import`, `reseller add`,
`reseller topup`, `reseller key`. Then --clients aiohttp clients (this process) each create --orders orders of
--qty codes one after another (each request signed, its own nonce and Idempotency-Key); every 10th order is sent
again with the same Idempotency-Key and must come back as the same order.

Figures: `orders_per_s` (orders made / wall seconds of the timed window), `p50_ms`/`p99_ms` (create-order
latency), `duplicates` (codes returned in two different orders; must be 0), `retries_same_order` (the repeats that
returned their first order; must equal `retries`), `wallet_drift` (the wallet's fall minus the sum of the orders'
amounts, plus the ledger sum minus the balance; must be 0), `errors`. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.common import ROOT, SKU, emit, log, postgres_database, sqlite_url, temp_dir, write_code_file, write_config
from core.signing import signed_headers

PRICE = 100  # fen per code (config_data's default price)


def cli(cfg: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "run.py", "--config", str(cfg), *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise SystemExit(f"run.py {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wallet(cfg: Path) -> tuple[int, int]:
    """(balance, ledger sum) from `reseller show 1`."""
    line = cli(cfg, "reseller", "show", "1")
    balance = int(line.split("balance ")[1].split()[0])
    ledger = int(line.split("ledger sum ")[1].split()[0])
    return balance, ledger


async def run_clients(base: str, key_id: str, secret: str, clients: int, orders: int, qty: int
                      ) -> dict[str, Any]:
    latencies: list[float] = []
    made: dict[str, dict[str, Any]] = {}
    errors: Counter[str] = Counter()
    retries = same = 0
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as http:
        async def post(key: str) -> tuple[int, dict[str, Any]]:
            body = json.dumps({"sku": SKU, "qty": qty}).encode()
            h = signed_headers(key_id, secret, "POST", "/api/v1/orders", body, idempotency_key=key)
            h["Content-Type"] = "application/json"
            async with http.post(base + "/api/v1/orders", data=body, headers=h) as resp:
                return resp.status, await resp.json()

        async def client(c: int) -> None:
            nonlocal retries, same
            for i in range(orders):
                key = f"bench-{c}-{i}"
                t0 = time.perf_counter()
                status, body = await post(key)
                latencies.append(time.perf_counter() - t0)
                if status != 201:
                    errors[body.get("error", {}).get("code", str(status))] += 1
                    continue
                made[body["order"]["id"]] = body["order"]
                if i % 10 == 9:
                    retries += 1
                    status, again = await post(key)
                    same += status == 200 and again["order"]["id"] == body["order"]["id"]

        t0 = time.perf_counter()
        await asyncio.gather(*[client(c) for c in range(clients)])
        wall = time.perf_counter() - t0
    latencies.sort()
    codes = Counter(code for o in made.values() for code in o["codes"])
    return {"orders": len(made), "seconds": round(wall, 3), "orders_per_s": round(len(made) / wall, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
            "duplicates": sum(1 for n in codes.values() if n > 1), "codes": len(codes),
            "retries": retries, "retries_same_order": same, "errors": dict(errors),
            "amount": sum(o["amount"] for o in made.values())}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--orders", type=int, default=20, help="orders per client")
    ap.add_argument("--qty", type=int, default=10)
    ap.add_argument("--postgres", default="", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    total = args.clients * args.orders
    with temp_dir("bench-b2b-", args.keep) as d:
        async with (postgres_database(args.postgres) if args.postgres else _nothing()) as pg:
            port = free_port()
            cfg = write_config(d, pg or sqlite_url(d))
            data = __import__("yaml").safe_load(cfg.read_text())
            data["server"] = {"host": "127.0.0.1", "port": port, "api": True, "api_rate_per_second": 10_000}
            cfg.write_text(__import__("yaml").safe_dump(data))
            pool = total * args.qty + 1000
            log(f"importing {pool} codes, onboarding a reseller")
            cli(cfg, "codes", "import", SKU, str(write_code_file(d / "codes.txt", pool)))
            cli(cfg, "reseller", "add", "Bench Reseller", "--discount", "5")
            funds = total * args.qty * PRICE * 2
            cli(cfg, "reseller", "topup", "1", str(funds), "--ref", "bench")
            lines = dict(ln.split(": ", 1) for ln in cli(cfg, "reseller", "key", "1").splitlines() if ": " in ln)
            before, _ = wallet(cfg)
            store = subprocess.Popen([sys.executable, "run.py", "--config", str(cfg)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                base = f"http://127.0.0.1:{port}"
                await _wait_up(base, store)
                log(f"{args.clients} clients x {args.orders} orders of {args.qty} codes")
                figures = await run_clients(base, lines["key id"], lines["secret"], args.clients, args.orders,
                                            args.qty)
            finally:
                store.send_signal(signal.SIGTERM)
                _, err = store.communicate(timeout=60)
            after, ledger = wallet(cfg)
    drift = abs((before - after) - figures["amount"]) + abs(ledger - after)
    ok = (figures["orders"] == total and figures["duplicates"] == 0 and drift == 0
          and figures["retries_same_order"] == figures["retries"] and not figures["errors"])
    if store.returncode != 0:
        log(f"store exited {store.returncode}: {err.strip()[-300:]}")
        ok = False
    emit({"bench": "b2b_api", "database": "postgresql" if args.postgres else "sqlite", "clients": args.clients,
          "qty": args.qty, **{k: v for k, v in figures.items() if k != "amount"}, "wallet_drift": drift,
          "wallet_spent": before - after, "ok": ok})


async def _wait_up(base: str, store: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(base + "/api/v1/openapi.json") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if store.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the store did not start")
            await asyncio.sleep(0.2)


class _nothing:
    async def __aenter__(self) -> str:
        return ""

    async def __aexit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    asyncio.run(main())
