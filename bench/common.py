"""Shared helpers for the benchmarks in bench/.

Every benchmark prints progress lines and ends with one line that is a single JSON object of figures.
Nothing here touches anything but temp dirs and 127.0.0.1 services.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml

from config.settings import Settings, parse_settings
from core.models import Buyer, Payment
from core.ports import Delivery

SKU = "BENCH-CODE"
CHANNEL = "bench"
PROVIDER = "bench"
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """A human-readable progress line (stdout, flushed, with elapsed seconds)."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", flush=True)


def emit(figures: dict[str, Any]) -> None:
    """The one final line: a single JSON object."""
    print(json.dumps(figures, sort_keys=False), flush=True)


# -- config ------------------------------------------------------------------------------------

def config_data(db_url: str, *, sku: str = SKU, max_qty: int = 10, price: int = 100,
                max_open_holds: int = 3) -> dict[str, Any]:
    """A minimal store config: one `code` product, vault key file next to the config, quiet logs."""
    return {
        "store": {"name": "Bench Shop", "currency": "CNY", "default_language": "en", "languages": ["en"],
                  "hold_minutes": 60, "max_open_holds": max_open_holds, "demo": False},
        "database": {"url": db_url, "sqlite_synchronous": "FULL", "pool_size": 5},
        "vault": {"key_file": "vault.key"},
        "logging": {"level": "WARNING"},
        "catalog": [{"sku": sku, "title": "Bench card", "price": price, "kind": "code", "max_qty": max_qty}],
    }


def sqlite_url(directory: Path, name: str = "store.db") -> str:
    return f"sqlite+aiosqlite:///{(directory / name).resolve()}"


def make_settings(directory: Path, db_url: str | None = None, **kw: Any) -> Settings:
    """Validated Settings for a temp store living in `directory` (SQLite file there unless db_url)."""
    data = config_data(db_url or sqlite_url(directory), **kw)
    return parse_settings(data, directory, env={})


def write_config(directory: Path, db_url: str | None = None, **kw: Any) -> Path:
    """Write config.yaml into `directory` (validated first with parse_settings); returns its path."""
    data = config_data(db_url or sqlite_url(directory), **kw)
    parse_settings(data, directory, env={})
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# -- ports for the bench ---------------------------------------------------------------------

@dataclass
class RecordingNotifier:
    """Records every delivery (plain codes, in memory) and signals when `target` deliveries arrived."""

    target: int = 0
    deliveries: list[tuple[str, list[str], float]] = field(default_factory=list)  # (order id, codes, t)
    notices: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _mark: int = 0

    def expect(self, n: int) -> None:
        """Start a new measured window expecting n more deliveries."""
        self._mark = len(self.deliveries)
        self.target = n
        self.done = asyncio.Event()
        if n <= 0:
            self.done.set()

    @property
    def window(self) -> list[tuple[str, list[str], float]]:
        return self.deliveries[self._mark:]

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        self.deliveries.append((delivery.order.id, list(delivery.codes), time.perf_counter()))
        if len(self.deliveries) - self._mark >= self.target:
            self.done.set()

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        self.notices.append((recipient, key, params))

    def duplicates(self) -> int:
        """Codes delivered more than once (over everything recorded, warm-up included)."""
        counts = Counter(code for _, codes, _ in self.deliveries for code in codes)
        return sum(1 for n in counts.values() if n > 1)

    def orders_delivered_twice(self) -> int:
        counts = Counter(oid for oid, _, _ in self.deliveries)
        return sum(1 for n in counts.values() if n > 1)


class BenchGateway:
    """The 'bench' payment provider: money always arrives; refunds are recorded."""

    name = PROVIDER

    def __init__(self) -> None:
        self.refunded: list[int] = []

    async def refund(self, payment: Payment, reason: str) -> None:
        if payment.id is not None:
            self.refunded.append(payment.id)


async def open_app(settings: Settings, notifier: RecordingNotifier, *, max_batch: int = 256):
    from app import App

    return await App.open(settings, notifiers={CHANNEL: notifier}, gateways={PROVIDER: BenchGateway()},
                          max_batch=max_batch)


# -- code files ----------------------------------------------------------------------------------

_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TABLE = bytes(_ALNUM[b % len(_ALNUM)] for b in range(256))


def code_lines(n: int, *, prefix: bytes = b"CARD-", chunk: int = 100_000) -> Iterator[bytes]:
    """n lines `CARD-<16 random alnum>\\n` (62^16 space: a collision is practically impossible)."""
    left = n
    while left > 0:
        k = min(chunk, left)
        blob = os.urandom(16 * k).translate(_TABLE)
        for i in range(0, 16 * k, 16):
            yield prefix + blob[i:i + 16] + b"\n"
        left -= k


def write_code_file(path: Path, n: int) -> Path:
    with path.open("wb") as fh:
        buf: list[bytes] = []
        for line in code_lines(n):
            buf.append(line)
            if len(buf) >= 100_000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return path


async def import_pool(app: Any, n: int, *, sku: str = SKU, batch_size: int = 20_000) -> int:
    """Fill the product's pool through core.supply.import_codes (setup, not timed)."""
    from core.supply import import_codes

    report = await import_codes(app.db.uow, app.vault, app.clock, sku, code_lines(n), batch_size=batch_size)
    if report.imported != n:
        raise RuntimeError(f"import: wanted {n}, imported {report.imported} (dup {report.duplicates}, "
                           f"rejected {report.rejected})")
    return report.imported


# -- the buyers --------------------------------------------------------------------------------

@dataclass
class RunResult:
    buyers: int
    seconds: float
    delivered: int
    errors: dict[str, int]
    latencies_ms: list[float]

    @property
    def orders_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_buyers(app: Any, notifier: RecordingNotifier, product_id: int, n: int, *, tag: str,
                     timeout: float = 300.0) -> RunResult:
    """n concurrent buyers, 1 code each: reserve -> pay -> (outbox) delivery recorded by the notifier.

    Timed from the start of the buyers to the n-th delivery recorded by the notifier.
    """
    from core.orders import PaymentNotice

    errors: Counter[str] = Counter()
    notifier.expect(n)
    run = f"{tag}-{secrets.token_hex(4)}"  # buyer ids and txn ids never repeat, even on a reused database

    async def buyer(i: int) -> None:
        b = Buyer(CHANNEL, f"{run}-{i}")
        try:
            order = await app.shop.reserve(b, product_id, 1, "en", chat_id=f"chat-{run}-{i}")
            res = await app.shop.pay(PaymentNotice(order.id, PROVIDER, f"tx-{run}-{i}", order.amount,
                                                   order.currency, payer=b))
            if res.outcome != "delivered":
                errors[f"pay:{res.outcome}:{res.reason}"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, reported in the JSON
            errors[f"{type(exc).__name__}:{getattr(exc, 'code', '')}"] += 1

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(buyer(i)) for i in range(n)]
    gathered = asyncio.gather(*tasks)
    try:
        await asyncio.wait_for(notifier.done.wait(), timeout=timeout)
    except TimeoutError:
        errors["timeout"] += 1
    t1 = time.perf_counter()
    await gathered
    window = notifier.window
    if notifier.done.is_set():
        # The n-th delivery's own timestamp (not when this coroutine woke up).
        t1 = window[n - 1][2]
    return RunResult(n, t1 - t0, min(len(window), n), dict(errors), [(t - t0) * 1000 for _, _, t in window[:n]])


async def warm_up(app: Any, notifier: RecordingNotifier, product_id: int, n: int) -> None:
    """A few orders first, so statement compilation and connection setup are not timed."""
    if n > 0:
        r = await run_buyers(app, notifier, product_id, n, tag="warm", timeout=60)
        if r.errors or r.delivered != n:
            raise RuntimeError(f"warm-up: {r.delivered}/{n} delivered, errors {r.errors}")


# -- PostgreSQL ----------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    """CREATE DATABASE bench_<random> on the server of `url`; yields its URL; DROPs it at the end."""
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    if base.get_backend_name() != "postgresql":
        raise SystemExit(f"--postgres wants a postgresql+asyncpg:// URL, got {base.drivername}")
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    log(f"created PostgreSQL database {name} on {base.host}:{base.port}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped PostgreSQL database {name}")
        except Exception as exc:  # noqa: BLE001
            log(f"WARNING: could not drop database {name}: {exc}")


@contextlib.contextmanager
def temp_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        if not keep:
            import shutil

            shutil.rmtree(d, ignore_errors=True)


async def stock_of(app: Any, sku: str = SKU) -> dict[str, int]:
    for s in await app.shop.stock():
        if s.sku == sku:
            return {"available": s.available, "held": s.held, "sold": s.sold}
    return {}


def chunks(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf
