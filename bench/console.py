"""The web console under load: 50 merchants signed in at once, each loading the console's pages over and over,
against a store on a large database (bench/report.py runs it on its 1,000,000-order month; alone it seeds its own).

The store runs in a child process (`--serve`: App, the HTTP server, the console, as `run.py` mounts it), so the
clients' work here does not share its event loop. Every merchant signs in through a real one-time link. Each round
a merchant loads every page of PAGES in turn (the dashboard, products, orders, an order's detail, tickets, reviews,
jobs, the audit log, reports); every answer must be 200. Target: `console_p99_ms` <= 300. Last line: one JSON
object.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.common import config_data, emit, log, sqlite_url, temp_dir
from config.settings import parse_settings
from core.models import Buyer

MERCHANTS = 50
PAGES = ["/", "/products", "/orders", "/orders/{order}", "/tickets", "/reviews", "/jobs", "/audit",
         "/reports?period=7d"]


def settings_data(url: str, key_dir: Path, merchants: int) -> dict[str, Any]:
    data = config_data(url)
    data["store"]["languages"] = ["en", "zh_CN"]
    data["vault"] = {"key_file": str(key_dir / "vault.key")}
    data["telegram"] = {"admins": list(range(1, merchants + 1))}
    data["console"] = {"enabled": True}
    return data


async def serve(url: str, port: int, key_dir: Path, merchants: int) -> None:
    """The child: the store's App with the console on its HTTP server, until SIGTERM."""
    from app import App  # noqa: PLC0415 - the parent never opens the store itself
    from bots.http import HttpServer  # noqa: PLC0415
    from bots.web import mount_console  # noqa: PLC0415

    settings = parse_settings(settings_data(url, key_dir, merchants), key_dir, env={})
    async with await App.open(settings) as app:
        server = HttpServer("127.0.0.1", port)
        mount_console(server, app)
        await server.start()
        await app.shop.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _links(url: str, key_dir: Path, merchants: int) -> list[str]:
    """One fresh sign-in token per merchant, issued as `/console` in the chat would."""
    from app import App  # noqa: PLC0415 - opens the same database to issue the links

    settings = parse_settings(settings_data(url, key_dir, merchants), key_dir, env={})
    async with await App.open(settings) as app:
        desk = app.shop.console
        assert desk is not None
        return [await desk.issue_link(Buyer("telegram", str(i))) for i in range(1, merchants + 1)]


async def _an_order(url: str, key_dir: Path, merchants: int) -> str:
    from app import App  # noqa: PLC0415

    settings = parse_settings(settings_data(url, key_dir, merchants), key_dir, env={})
    async with await App.open(settings) as app, app.shop.uow() as uow:
        recent = await uow.orders.recent(None, 1, 0)
    return recent[0].id if recent else "NONE"


async def load(url: str, *, merchants: int = MERCHANTS, rounds: int = 5, key_dir: Path) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tokens = await _links(url, key_dir, merchants)
    order = await _an_order(url, key_dir, merchants)
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    child = subprocess.Popen([sys.executable, *profile, __file__, "--serve", url, "--port", str(port),
                              "--keys", str(key_dir), "--merchants", str(merchants)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        assert line.strip() == "ready", f"the console did not start: {line!r}"
        base = f"http://127.0.0.1:{port}/console"
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        per_page: dict[str, list[float]] = {}
        pages = [p.format(order=order) for p in PAGES]

        async def merchant(token: str) -> None:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(base + "/login", data={"t": token}, allow_redirects=False) as r:
                    assert r.status == 303, r.status
                for _ in range(rounds):
                    for page in pages:
                        started = time.perf_counter()
                        async with http.get(base + page, allow_redirects=False) as r:
                            await r.read()
                        ms = (time.perf_counter() - started) * 1000
                        latencies.append(ms)
                        per_page.setdefault(page.split("?")[0], []).append(ms)
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        if r.status != 200:
                            log(f"console: {page} answered {r.status}")

        started = time.perf_counter()
        await asyncio.gather(*(merchant(t) for t in tokens))
        elapsed = time.perf_counter() - started
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    latencies.sort()
    p99 = _p99(latencies)
    for page, ms in sorted(per_page.items(), key=lambda kv: -_p99(sorted(kv[1]))):
        log(f"console: {page:<24} p50 {statistics.median(ms):7.1f} ms  p99 {_p99(sorted(ms)):7.1f} ms")
    return {"console_merchants": merchants, "console_requests": len(latencies),
            "console_p50_ms": round(statistics.median(latencies), 1), "console_p99_ms": round(p99, 1),
            "console_requests_per_s": round(len(latencies) / elapsed, 1),
            "console_non_200": sum(n for s, n in statuses.items() if s != 200)}


def _p99(ms: list[float]) -> float:
    return ms[max(0, int(len(ms) * 0.99) - 1)]


async def alone(args: argparse.Namespace) -> dict[str, Any]:
    """Without bench/report.py: a small store of its own (the catalogue's product, no orders)."""
    with temp_dir("bench-console-") as d:
        url = args.db or sqlite_url(d / "store.db")
        out = await load(url, merchants=args.merchants, rounds=args.rounds, key_dir=d)
    out["ok"] = out["console_p99_ms"] <= 300 and out["console_non_200"] == 0
    return {"bench": "console", **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merchants", type=int, default=MERCHANTS)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--db", metavar="DB_URL", help="an existing store's database (e.g. one bench/report.py seeded "
                                                  "with --keep) instead of an empty one")
    p.add_argument("--serve", metavar="DB_URL", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--keys", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, Path(args.keys), args.merchants))
        return
    emit(asyncio.run(alone(args)))


if __name__ == "__main__":
    main()
