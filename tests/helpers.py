"""Test helpers: open a whole store (real database, real vault, real group committer) with recording fakes
for the outside world, and feed it codes."""
from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app import App
from config.settings import parse_settings
from core.clock import Clock
from core.models import Buyer, Order, Payment
from core.orders import PaymentNotice, PaymentResult
from core.ports import Delivery
from core.supply import ImportReport, import_codes
from tests.dbtemplate import from_template

CHANNEL = "test"
PROVIDER = "test"
SKU = "CARD-10"

DEFAULT_CATALOG: list[dict[str, Any]] = [
    {"sku": SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
]


@dataclass(frozen=True, slots=True)
class Notice:
    recipient: str
    language: str
    key: str
    params: dict[str, Any]


class RecordingNotifier:
    """The chat platform: records every message the store sends (deliveries carry the plain codes)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, Delivery]] = []
        self.notices: list[Notice] = []

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        self.deliveries.append((recipient, delivery))

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        self.notices.append(Notice(recipient, language, key, dict(params)))

    def codes(self) -> list[str]:
        return [c for _, d in self.deliveries for c in d.codes]

    def delivered_to(self, recipient: str) -> list[Delivery]:
        return [d for r, d in self.deliveries if r == recipient]

    def notices_to(self, recipient: str, key: str | None = None) -> list[Notice]:
        return [n for n in self.notices if n.recipient == recipient and (key is None or n.key == key)]


class RecordingGateway:
    """The payment provider: records every refund the store asks for."""

    name = PROVIDER

    def __init__(self) -> None:
        self.refunds: list[tuple[Payment, str]] = []

    async def refund(self, payment: Payment, reason: str) -> None:
        self.refunds.append((payment, reason))

    def refunded_txns(self) -> list[str]:
        return [p.provider_txn_id for p, _ in self.refunds]


def make_settings(url: str, tmp_path: Path, *, catalog: Sequence[dict[str, Any]] | None = None, demo: bool = True,
                  store: dict[str, Any] | None = None, key_file: Path | None = None,
                  marketing: dict[str, Any] | None = None):
    data: dict[str, Any] = {
        "store": {"demo": demo, **(store or {})},
        "database": {"url": url},
        "vault": {"key_file": str(key_file or tmp_path / "vault.key")},
        "catalog": list(DEFAULT_CATALOG if catalog is None else catalog),
    }
    if marketing:
        data["marketing"] = marketing
    return parse_settings(data, tmp_path, env={})


@asynccontextmanager
async def open_shop(url: str, tmp_path: Path, *, catalog: Sequence[dict[str, Any]] | None = None,
                    clock: Clock | None = None, demo: bool = True, max_batch: int = 256,
                    store: dict[str, Any] | None = None, marketing: dict[str, Any] | None = None
                    ) -> AsyncIterator[tuple[Any, RecordingNotifier,
                                                                                RecordingGateway]]:
    """A whole store on `url` (schema migrated, vault key file under tmp_path); buyers use channel "test"."""
    settings = make_settings(from_template(url), tmp_path, catalog=catalog, demo=demo, store=store,
                             marketing=marketing)
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, clock=clock, notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway},
                         max_batch=max_batch)
    try:
        yield app, notifier, gateway
    finally:
        await app.close()


def code_lines(codes: Iterable[str]) -> list[bytes]:
    return [(c + "\n").encode() for c in codes]


def unique_codes(n: int, prefix: str = "CODE") -> list[str]:
    return [f"{prefix}-{uuid.uuid4().hex[:16].upper()}" for _ in range(n)]


async def import_n(app: Any, n: int, sku: str = SKU, prefix: str = "CODE") -> list[str]:
    """Import n fresh unique codes into sku; returns their plain text."""
    codes = unique_codes(n, prefix)
    report = await import_lines(app, code_lines(codes), sku)
    assert report.imported == n, report
    return codes


async def import_lines(app: Any, lines: Iterable[bytes], sku: str = SKU) -> ImportReport:
    return await import_codes(app.db.uow, app.vault, app.clock, sku, lines)


def buyer(n: int | str) -> Buyer:
    return Buyer(CHANNEL, f"u{n}")


def notice_for(order: Order, txn: str | None = None, *, payer: Buyer | None = None, amount: int | None = None,
               currency: str | None = None) -> PaymentNotice:
    """What the provider reports when the buyer pays the order in full (override to get it wrong)."""
    return PaymentNotice(order.id, PROVIDER, txn or f"txn-{order.id}",
                         order.amount if amount is None else amount,
                         order.currency if currency is None else currency,
                         order.buyer if payer is None else payer)


async def pay(app: Any, order: Order, txn: str | None = None, **kw: Any) -> PaymentResult:
    return await app.shop.pay(notice_for(order, txn, **kw))


async def settle(*apps: Any, rounds: int = 50) -> None:
    """Run every app's outbox dispatcher until nothing is due anywhere (deliveries, refunds, follow-ups)."""
    for _ in range(rounds):
        sent = 0
        for app in apps:
            while (n := await app.shop.dispatcher.dispatch_once()) > 0:
                sent += n
        if sent == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("the outbox did not settle")


async def pending_outbox(app: Any) -> int:
    async with app.db.uow() as uow:
        return await uow.outbox.pending_count()


async def stock_of(app: Any, sku: str = SKU) -> tuple[int, int, int]:
    """(available, held, sold) as the merchant's stock report shows it."""
    for line in await app.shop.stock():
        if line.sku == sku:
            return line.available, line.held, line.sold
    raise AssertionError(f"{sku} not in the stock report")


async def order_status(app: Any, order_id: str) -> str:
    async with app.db.uow() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    return order.status.value


async def payments_for(app: Any, order_id: str) -> list[Payment]:
    async with app.db.uow() as uow:
        return await uow.payments.for_order(order_id)


async def product_id(app: Any, sku: str = SKU) -> int:
    p = await app.shop.product_by_sku(sku)
    assert p is not None, sku
    return p.id


# -- the CLI as a process ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def sqlite_url_for(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


def write_config(tmp_path: Path, *, url: str | None = None, catalog: Sequence[dict[str, Any]] | None = None,
                 demo: bool = True, name: str = "config.yaml", extra: dict[str, Any] | None = None) -> Path:
    """A settings file equal to what open_shop(url, tmp_path, catalog=...) uses (same database, same key file)."""
    data: dict[str, Any] = {
        "store": {"demo": demo},
        "database": {"url": url or sqlite_url_for(tmp_path)},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": list(DEFAULT_CATALOG if catalog is None else catalog),
        **(extra or {}),
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_cli(config: Path, *args: str, timeout: float = 120):
    """`python run.py --config CONFIG ARGS...` from the project root; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "run.py", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def stock_table(stdout: str) -> dict[str, tuple[int, int, int]]:
    """Parse the `stock` command's table: SKU -> (available, held, sold)."""
    lines = [ln.split() for ln in stdout.strip().splitlines()]
    assert lines and lines[0] == ["SKU", "available", "held", "sold", "expired"], stdout
    return {cols[0]: (int(cols[1]), int(cols[2]), int(cols[3])) for cols in lines[1:]}


# -- the store as a process ------------------------------------------------------------------------------------
_PORTS = itertools.count()


def free_port() -> int:
    """A port for a store process this test starts. Each xdist worker takes its own range below the kernel's
    ephemeral ports (32768 and up): a port the OS handed out as free could be taken by another worker's store, or by
    a client socket, before ours binds it (a test once reached another test's server that way)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = 20000 + (index % 24) * 500
    for _ in range(500):
        port = base + next(_PORTS) % 500
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the whole range busy: whatever the OS has
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_store(config: Path, port: int, timeout: float = 30) -> subprocess.Popen[str]:
    """`run.py --config CONFIG` as a merchant runs it, returned once its HTTP server listens on `port` (an async
    test whose fakes the store talks to calls it through asyncio.to_thread, so they keep answering)."""
    proc = subprocess.Popen([sys.executable, "run.py", "--config", str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate(timeout=30)
                raise AssertionError(f"the store did not start: {err[-2000:]}") from None
            time.sleep(0.1)


def stop_store(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, as systemd stops it: the store must end cleanly (exit 0)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
