"""The store in the benchmark's own process: `app.App` opened with a recording notifier and the `bench` payment
gateway, its pool filled through `core.supply.import_codes`, and the concurrent buyers (reserve -> pay -> the
outbox's delivery, timed).

Apart from bench/common.py so that a process playing only the outside world (telegram_e2e.py's
`--telegram-side` child) never loads the store.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app import App
from bench.common import CHANNEL, PROVIDER, SKU, code_lines
from config.settings import Settings
from core.models import Buyer, Payment
from core.orders import PaymentNotice
from core.ports import Delivery
from core.supply import import_codes

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


async def open_app(settings: Settings, notifier: RecordingNotifier, *, max_batch: int = 256) -> App:
    return await App.open(settings, notifiers={CHANNEL: notifier}, gateways={PROVIDER: BenchGateway()},
                          max_batch=max_batch)


# -- the pool -------------------------------------------------------------------------------------

async def import_pool(app: Any, n: int, *, sku: str = SKU, batch_size: int = 20_000) -> int:
    """Fill the product's pool through core.supply.import_codes (setup, not timed)."""
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


async def stock_of(app: Any, sku: str = SKU) -> dict[str, int]:
    for s in await app.shop.stock():
        if s.sku == sku:
            return {"available": s.available, "held": s.held, "sold": s.sold}
    return {}
