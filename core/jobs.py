"""Scheduled use cases (restock, stock alerts, hold and code expiry, the daily summary) and the one-runner rule.

Every process on the database runs the same APScheduler jobs (jobs/scheduler.py), but a job only does its work
in the process that holds the scheduler lease (a `meta` row with an owner and an expiry, JobStore.claim), and
only once per tick: the tick ("slot": the scheduled time, interval jobs aligned to fixed instants so every
process fires at the same moments) is written to the job's record in the same transaction that renews the
lease. A holder that dies stops renewing; its lease expires after `jobs.lease_seconds` and the next process
whose tick comes takes it over. Each run's result goes to the job's record (`run.py jobs` shows them).

Restock (per product with `restock:`): the purchase is planned in a locked transaction that reserves its cost
against the day's budget and writes the request id (`rs-<sku>-<day>-<n>`) before the supplier is called; a
crash or a lost answer leaves that plan pending and the next run asks again with the same id (the supplier
never buys twice for one id), so a crash never double-buys and the budget is never overrun.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import socket
import time as _time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from core.alerts import AdminAlerts
from core.supply import import_codes
from core.models import AuditEntry, Kind, OutboxItem, Product, SupplyRequest
from core.models import localized

if TYPE_CHECKING:
    from core.shop import Shop

log = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # interval ticks are EPOCH + k * interval, in every process
LEASE_KEY = "scheduler.lease"
JOB_PREFIX = "job."
RESTOCK_PREFIX = "restock."
SUPPLIER_PREFIX = "supplier."
STOCK_ALERT_PREFIX = "alert.stock."
BALANCE_ALERT_PREFIX = "alert.balance."
SUPPLIER_BACKOFF = timedelta(minutes=1)  # after the first failure; doubles up to jobs.supplier_backoff_max_minutes


# -- ports ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    until: datetime

    def dump(self) -> str:
        return json.dumps({"owner": self.owner, "until": self.until.isoformat()})

    @classmethod
    def parse(cls, raw: str | None) -> Lease | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(str(data["owner"]), datetime.fromisoformat(data["until"]))


@dataclass(frozen=True, slots=True)
class SalesLine:
    sku: str
    currency: str
    status: str
    orders: int
    qty: int
    amount: int


class JobStore(Protocol):
    """The scheduler's storage (storage/jobs.py)."""

    async def claim(self, owner: str, now: datetime, ttl: timedelta, job: str | None = None,
                    slot: str | None = None) -> bool:
        """Take or renew the lease for owner until now + ttl; False when another owner holds it. With job and
        slot: also mark the slot as the job's tick in the same transaction; False when it already ran."""
    async def release(self, owner: str, now: datetime) -> None: ...
    async def lease(self) -> Lease | None: ...
    async def record(self, job: str, values: dict[str, Any]) -> None: ...
    async def records(self) -> dict[str, dict[str, Any]]: ...
    async def withdraw_expiring(self, cutoff: datetime) -> dict[int, int]: ...
    async def sales_between(self, start: datetime, end: datetime) -> list[SalesLine]: ...
    async def failures_between(self, start: datetime, end: datetime) -> dict[str, int]: ...


class Supplier(Protocol):
    """What restock needs of core.ports.Supplier (errors: core.errors.SupplierError with `retryable`)."""

    name: str

    async def balance(self) -> int: ...
    async def products(self) -> list[Any]: ...
    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]: ...


# -- the runner ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class JobSpec:
    name: str
    fn: Callable[[], Awaitable[str]]
    every: timedelta | None = None  # an interval job, ticking at EPOCH + k * every
    daily_at: time | None = None  # or a daily job at this local time (JobRunner.zone)
    manual: bool = True  # may `run.py jobs run NAME` run it (jobs that need the chat channels may not)
    timeout: float | None = None

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every.total_seconds():g}s"
        assert self.daily_at is not None
        return f"daily {self.daily_at:%H:%M}"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobRunner:
    """Runs the store's jobs under the scheduler lease and keeps each job's record."""

    def __init__(self, store: JobStore, clock: Any, *, owner: str | None = None,
                 lease: timedelta = timedelta(seconds=60), zone: str = "UTC") -> None:
        self.store = store
        self.clock = clock
        self.owner = owner or default_owner()
        self.lease = lease
        self.zone = ZoneInfo(zone)
        self.jobs: dict[str, JobSpec] = {}

    def add(self, name: str, fn: Callable[[], Awaitable[str]], *, every: timedelta | None = None,
            daily_at: time | None = None, manual: bool = True, timeout: float | None = None) -> JobSpec:
        assert (every is None) != (daily_at is None), "a job is either an interval or a daily job"
        spec = JobSpec(name, fn, every, daily_at, manual, timeout)
        self.jobs[name] = spec
        return spec

    # -- when ------------------------------------------------------------------------------------
    def slot_start(self, spec: JobSpec, now: datetime) -> datetime:
        """The scheduled time of the tick that now belongs to."""
        if spec.every is not None:
            k = math.floor((now - EPOCH) / spec.every + 1e-9)
            return EPOCH + spec.every * k
        assert spec.daily_at is not None
        local = now.astimezone(self.zone)
        today = datetime.combine(local.date(), spec.daily_at, tzinfo=self.zone)
        return (today if local >= today else today - timedelta(days=1)).astimezone(timezone.utc)

    def next_run(self, spec: JobSpec, now: datetime) -> datetime:
        if spec.every is not None:
            return self.slot_start(spec, now) + spec.every
        start = self.slot_start(spec, now).astimezone(self.zone)
        nxt = datetime.combine(start.date() + timedelta(days=1), spec.daily_at or time(), tzinfo=self.zone)
        return nxt.astimezone(timezone.utc)

    # -- running ---------------------------------------------------------------------------------
    async def heartbeat(self) -> bool:
        """Take or renew the lease; True while this process is the runner."""
        try:
            return await self.store.claim(self.owner, self.clock.now(), self.lease)
        except Exception as exc:  # noqa: BLE001 - the database is away: the lease simply runs out
            log.warning("scheduler lease not renewed: %s", type(exc).__name__)
            return False

    async def release(self) -> None:
        """A clean stop: the lease ends now, so another process takes over at its next tick."""
        try:
            await self.store.release(self.owner, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - it simply expires
            log.warning("scheduler lease not released: %s", type(exc).__name__)

    async def tick(self, name: str) -> bool:
        """A scheduled run: only in the lease holder, once per tick. True if it ran here."""
        spec = self.jobs[name]
        now = self.clock.now()
        slot = self.slot_start(spec, now).isoformat()
        try:
            if not await self.store.claim(self.owner, now, self.lease, name, slot):
                return False
        except Exception as exc:  # noqa: BLE001 - the database is away: the next tick tries again
            log.warning("job %s: lease not taken: %s", name, type(exc).__name__)
            return False
        await self._run(spec, self.owner)
        return True

    async def run_now(self, name: str, runner: str = "manual") -> dict[str, Any]:
        """Run one job now, outside the schedule (`run.py jobs run NAME`); returns its record."""
        spec = self.jobs[name]
        return await self._run(spec, runner)

    async def _run(self, spec: JobSpec, runner: str) -> dict[str, Any]:
        started = self.clock.now()
        t0 = _time.perf_counter()
        try:
            timeout = spec.timeout if spec.timeout is not None else self.lease.total_seconds()
            async with asyncio.timeout(timeout):
                result, ok = str(await spec.fn()), True
        except Exception as exc:  # noqa: BLE001 - recorded; the next tick runs again
            log.exception("job %s failed", spec.name)
            result, ok = f"error: {type(exc).__name__}: {exc}"[:300], False
        record = {"last_run": started.isoformat(), "seconds": round(_time.perf_counter() - t0, 3),
                  "result": result[:300], "ok": ok, "runner": runner}
        try:
            await self.store.record(spec.name, record)
        except Exception as exc:  # noqa: BLE001
            log.warning("job %s: result not recorded: %s", spec.name, type(exc).__name__)
        return record

    async def status(self) -> list[dict[str, Any]]:
        """Each job with its schedule, last run and result, and next run (`run.py jobs`)."""
        now = self.clock.now()
        records = await self.store.records()
        out = []
        for name, spec in self.jobs.items():
            rec = records.get(name, {})
            out.append({"name": name, "schedule": spec.describe(), "last_run": rec.get("last_run"),
                        "result": rec.get("result"), "ok": rec.get("ok"), "runner": rec.get("runner"),
                        "next_run": self.next_run(spec, now).isoformat()})
        return out


# -- the store's jobs ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RestockRule:
    sku: str
    below: int
    up_to: int
    supplier: str
    daily_budget: int
    supplier_sku: str
    cost: int | None = None  # None: the supplier's listed price


@dataclass(slots=True)
class JobsConfig:
    expiry_margin: timedelta = timedelta(hours=1)
    low_stock: int = 5
    zone: str = "UTC"
    backoff_max: timedelta = timedelta(hours=1)
    rules: list[RestockRule] = field(default_factory=list)
    topup_stuck: timedelta = timedelta(hours=1)  # a top-up still pending this long is a merchant's case


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"


class StoreJobs:
    """The use cases the scheduler runs. Each returns a one-line result for the job's record."""

    def __init__(self, shop: Shop, store: JobStore, alerts: AdminAlerts, config: JobsConfig,
                 suppliers: Mapping[str, Supplier] | None = None) -> None:
        self.shop = shop
        self.store = store
        self.alerts = alerts
        self.config = config
        self._suppliers = suppliers
        self.zone = ZoneInfo(config.zone)

    @property
    def suppliers(self) -> Mapping[str, Supplier]:
        if self._suppliers is not None:
            return self._suppliers
        return self.shop.suppliers

    def register(self, runner: JobRunner, every: Mapping[str, float], daily_summary_at: time | None) -> None:
        """The jobs core owns; jobs/scheduler.py adds the channel ones (outbox, WeChat Pay)."""
        runner.add("expire-holds", self.expire_holds, every=timedelta(seconds=every["expire-holds"]))
        runner.add("restock", self.restock, every=timedelta(seconds=every["restock"]))
        runner.add("stock-alerts", self.stock_alerts, every=timedelta(seconds=every["stock-alerts"]))
        runner.add("expire-codes", self.expire_codes, every=timedelta(seconds=every["expire-codes"]))
        runner.add("poll-topups", self.poll_topups, every=timedelta(seconds=every["poll-topups"]))
        if self.shop.resellers is not None:
            runner.add("b2b-waiting", self.b2b_waiting, every=timedelta(seconds=every.get("b2b-waiting", 60)))
        if daily_summary_at is not None:
            runner.add("daily-summary", self.daily_summary, daily_at=daily_summary_at)

    async def b2b_waiting(self) -> str:
        """B2B orders waiting for stock (partial policy `wait`): served oldest first, refunded after the wait."""
        desk = self.shop.resellers
        if desk is None:
            return "no resellers"
        served, refunded = await desk.fill_waiting()
        return f"{served} waiting orders delivered, {refunded} refunded"

    def today(self) -> date:
        return self.shop.clock.now().astimezone(self.zone).date()

    # -- hold expiry -------------------------------------------------------------------------------
    async def expire_holds(self) -> str:
        """Release the stock of unpaid orders whose hold lapsed, and tell each buyer the invoice lapsed."""
        shop = self.shop
        async with shop.uow(write=True) as uow:
            lapsed = await shop.book.expire_holds(uow)
            if lapsed:
                await uow.outbox.add_many([
                    OutboxItem(None, "notify", o.buyer.channel, o.chat_id, o.id,
                               {"key": "order.lapsed", "language": o.language, "params": {"order": o.id}})
                    for o in lapsed])
            await uow.commit()
        return f"{len(lapsed)} holds released"

    # -- stock alerts ------------------------------------------------------------------------------
    async def _pool_products(self) -> list[Product]:
        return [p for p in await self.shop.products() if p.kind is Kind.CODE]

    async def stock_alerts(self) -> str:
        """Low-stock and out-of-stock alerts, once per crossing (the level is kept in meta)."""
        shop = self.shop
        products = await self._pool_products()
        threshold = self.config.low_stock
        async with shop.uow() as uow:
            counts = await uow.codes.available_counts([p.id for p in products], threshold + 1, shop.clock.now())
        sent = []
        async with shop.uow(write=True) as uow:
            levels = await uow.meta.with_prefix(STOCK_ALERT_PREFIX)
            due: list[tuple[str, Product, int]] = []
            for p in products:
                n = counts.get(p.id, 0)
                level = "out" if n == 0 else "low" if n <= threshold else "ok"
                key = STOCK_ALERT_PREFIX + p.sku
                before = levels.get(key, "ok")
                if level == before:
                    continue
                await uow.meta.set(key, level)
                if _rank(level) > _rank(before):  # a crossing downwards: low, or out
                    due.append((level, p, n))
            await uow.commit()
        for level, p, n in due:
            await self.alerts.alert("alert.out_of_stock" if level == "out" else "alert.low_stock",
                                    {"sku": p.sku, "title": self._title(p), "n": n})
            sent.append(f"{p.sku}:{level}")
        return f"alerts: {', '.join(sent)}" if sent else "no new alerts"

    def _title(self, p: Product) -> str:
        return localized(p.title, self.shop.default_language, self.shop.default_language)

    # -- code expiry -------------------------------------------------------------------------------
    async def expire_codes(self) -> str:
        """Withdraw codes that expire within the margin (they are never sold) and tell the merchants."""
        now = self.shop.clock.now()
        cutoff = now + self.config.expiry_margin
        counts = await self.store.withdraw_expiring(cutoff)
        if not counts:
            return "nothing expiring"
        products = {p.id: p for p in await self.shop.products(include_inactive=True)}
        async with self.shop.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("withdraw", "system", "jobs", now, product_id=pid,
                                                 detail={"codes": n, "reason": "expiring", "before": cutoff.isoformat()})
                                      for pid, n in sorted(counts.items())])
            await uow.commit()
        for pid, n in sorted(counts.items()):
            p = products.get(pid)
            await self.alerts.alert("alert.codes_withdrawn", {
                "sku": p.sku if p else str(pid), "title": self._title(p) if p else "", "n": n,
                "minutes": int(self.config.expiry_margin.total_seconds() // 60)})
        return "withdrawn " + ", ".join(f"{products[pid].sku if pid in products else pid}:{n}"
                                        for pid, n in sorted(counts.items()))

    # -- top-ups -----------------------------------------------------------------------------------
    async def poll_topups(self) -> str:
        """Ask suppliers about pending top-ups (core.suppliers.poll_topups: finished ones are delivered or
        refunded there)."""
        from core.supply import poll_topups  # noqa: PLC0415 - the supplier desk, only when this job runs

        finished = await poll_topups(self.shop)
        stuck = await self._stuck_topups()
        return f"{finished} top-ups finished" + (f", {stuck} stuck (merchants told)" if stuck else "")

    async def _stuck_topups(self) -> int:
        """Top-ups the supplier has not finished long after payment: never refunded automatically (the
        supplier may still top the account up, and the money would be gone twice); the merchants are told
        once per top-up, to settle it with the supplier and then refund or not."""
        now = self.shop.clock.now()
        async with self.shop.uow() as uow:
            pending = await uow.supplies.pending_topups(500)
        old = [r for r in pending if r.created_at <= now - self.config.topup_stuck]
        told = 0
        for req in old:
            key = f"topup.stuck.{req.request_id}"
            async with self.shop.uow(write=True) as uow:
                if await uow.meta.get(key) is not None:
                    continue
                await uow.meta.set(key, now.isoformat())
                await uow.commit()
            await self.alerts.alert("alert.topup_stuck", {
                "order": req.order_id or "", "supplier": req.supplier,
                "minutes": int((now - req.created_at).total_seconds() // 60)})
            told += 1
        return told

    # -- daily summary -----------------------------------------------------------------------------
    async def daily_summary(self, end: datetime | None = None) -> str:
        """Yesterday's sales, today's stock and the day's failures, to the merchants."""
        now = self.shop.clock.now()
        end = end or now
        start = end - timedelta(days=1)
        lines = await self.store.sales_between(start, end)
        orders = sum(x.orders for x in lines if x.status == "delivered")
        revenue: dict[str, int] = {}
        for x in lines:
            if x.status == "delivered":
                revenue[x.currency] = revenue.get(x.currency, 0) + x.amount
        refunds = sum(x.orders for x in lines if x.status in ("refunding", "refunded"))
        pools = {p.id for p in await self._pool_products()}
        stock = [s for s in await self.shop.stock() if s.product_id in pools]
        failures = await self.store.failures_between(start, end)
        records = await self.store.records()
        failed_jobs = sorted(name for name, r in records.items() if r.get("ok") is False)
        async with self.shop.uow() as uow:
            suppliers = await uow.meta.with_prefix(SUPPLIER_PREFIX)
        failing = sorted(k[len(SUPPLIER_PREFIX):] for k, v in suppliers.items() if json.loads(v).get("failures"))
        params = {
            "since": f"{start.astimezone(self.zone):%Y-%m-%d %H:%M}",
            "until": f"{end.astimezone(self.zone):%Y-%m-%d %H:%M}",
            "orders": orders, "refunds": refunds,
            "revenue": ", ".join(_money(a, c) for c, a in sorted(revenue.items())) or "0",
            "stock": ", ".join(f"{s.sku} {s.available}" for s in stock) or "-",
            "outbox_failed": failures.get("outbox_failed", 0),
            "outbox_retrying": failures.get("outbox_retrying", 0),
            "jobs": ", ".join(failed_jobs) or "-",
            "suppliers": ", ".join(failing) or "-",
        }
        await self.alerts.alert("alert.daily_summary", params)
        return f"summary sent: {orders} orders, {params['revenue']}"

    # -- restock -----------------------------------------------------------------------------------
    async def restock(self) -> str:
        """Buy codes for pools below their safety line, within each product's daily budget."""
        results = []
        balances: dict[str, int] = {}  # asked once per supplier per run, then counted down here
        for rule in self.config.rules:
            try:
                out = await self.restock_one(rule, balances)
            except Exception as exc:  # noqa: BLE001 - one product's trouble must not stop the others
                log.exception("restock of %s failed", rule.sku)
                out = f"error {type(exc).__name__}"
            if out:
                results.append(f"{rule.sku}: {out}")
        return "; ".join(results) or "nothing to restock"

    async def restock_one(self, rule: RestockRule, balances: dict[str, int] | None = None) -> str:
        shop = self.shop
        product = await shop.product_by_sku(rule.sku)
        if product is None or not product.active or product.kind is not Kind.CODE:
            return "not on sale" if product is not None else "unknown SKU"
        supplier = self.suppliers.get(rule.supplier)
        if supplier is None:
            return f"no supplier {rule.supplier!r}"
        now = shop.clock.now()
        key = RESTOCK_PREFIX + rule.sku
        async with shop.uow() as uow:
            state = _load(await uow.meta.get(key))
            counts = await uow.codes.available_counts([product.id], rule.up_to, now)
        available = counts.get(product.id, 0)
        pending = state.get("pending")
        if pending is None and available >= rule.below:
            return ""
        if not await self._supplier_ready(rule.supplier, now):
            return "supplier backing off"
        if pending is None:
            try:
                cost = rule.cost if rule.cost is not None else await self._listed_cost(supplier, rule.supplier_sku)
                if cost is None:
                    return f"no price for {rule.supplier_sku} at {rule.supplier}"
                balance = balances[rule.supplier] if balances and rule.supplier in balances \
                    else await supplier.balance()
            except Exception as exc:  # noqa: BLE001 - SupplierError, timeouts, transport errors
                await self._supplier_failed(rule.supplier, exc)
                return f"supplier failed: {type(exc).__name__}"
            affordable = balance // cost if cost > 0 else rule.up_to
            await self._balance_level(rule.supplier, low=affordable < 1, balance=balance, sku=rule.sku, cost=cost)
            if affordable < 1:
                return f"supplier balance {balance} below cost {cost}"
            pending = await self._plan(rule, product, cost, affordable)
            if isinstance(pending, str):
                return pending
            if balances is not None:
                balances[rule.supplier] = balance - int(pending["qty"]) * int(pending["cost"])
        return await self._buy(rule, product, supplier, pending)

    async def _plan(self, rule: RestockRule, product: Product, cost: int, affordable: int) -> dict[str, Any] | str:
        """Reserve the purchase against today's budget and write its request id, before any supplier call."""
        shop = self.shop
        key = RESTOCK_PREFIX + rule.sku
        day = self.today().isoformat()
        alert: tuple[str, dict[str, Any]] | None = None
        async with shop.uow(write=True) as uow:
            await uow.audit.lock_actor("restock", rule.sku)  # PostgreSQL: one planner per product at a time
            state = _load(await uow.meta.get(key))
            if state.get("pending"):
                return state["pending"]  # planned meanwhile (another run): carry on with it
            if state.get("day") != day:
                state.update(day=day, spent=0, seq=0)
            counts = await uow.codes.available_counts([product.id], rule.up_to, shop.clock.now())
            available = counts.get(product.id, 0)
            if available >= rule.below:
                return ""
            left = rule.daily_budget - int(state.get("spent", 0))
            qty = min(rule.up_to - available, affordable, left // cost if cost > 0 else rule.up_to)
            if qty < 1:
                if state.get("budget_alerted") != day:
                    state["budget_alerted"] = day
                    alert = ("alert.restock_budget", {"sku": rule.sku, "budget": rule.daily_budget,
                                                      "spent": int(state.get("spent", 0)), "cost": cost})
                await uow.meta.set(key, json.dumps(state))
                await uow.commit()
                result: dict[str, Any] | str = f"daily budget left {left} < cost {cost}"
            else:
                seq = int(state.get("seq", 0)) + 1
                pending = {"request_id": f"rs-{rule.sku}-{day.replace('-', '')}-{seq}", "qty": qty, "cost": cost,
                           "day": day}
                state.update(seq=seq, spent=int(state.get("spent", 0)) + qty * cost, pending=pending)
                await uow.meta.set(key, json.dumps(state))
                now = shop.clock.now()  # the supplier ledger (core/suppliers.py) sees restock purchases too
                await uow.supplies.save(SupplyRequest(pending["request_id"], rule.supplier, rule.supplier_sku, "buy",
                                                      "pending", now, now, None, qty, qty * cost,
                                                      detail=f"restock {rule.sku}"))
                await uow.commit()
                result = pending
        if alert is not None:
            await self.alerts.alert(*alert)
        return result

    async def _buy(self, rule: RestockRule, product: Product, supplier: Supplier, pending: dict[str, Any]) -> str:
        rid, qty = str(pending["request_id"]), int(pending["qty"])
        try:
            codes = await supplier.buy(rule.supplier_sku, qty, rid)
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "retryable", True):  # maybe bought: keep the plan, ask again with the same id
                await self._supplier_failed(rule.supplier, exc)
                return f"buy {rid} failed (will retry): {type(exc).__name__}"
            await self._settle(rule, rid, bought=0)  # refused: nothing bought; the budget is given back
            await self._supplier_failed(rule.supplier, exc)
            return f"buy {rid} refused: {exc}"[:200]
        codes = codes[:qty]  # never more into the pool than was paid for
        report = await import_codes(self.shop.uow, self.shop.vault, self.shop.clock, rule.sku,
                                    [(c + "\n").encode() for c in codes], actor=f"supplier:{rule.supplier}",
                                    channel="jobs")
        await self._settle(rule, rid, bought=len(codes), imported=report.imported)
        if report.imported:
            await self.b2b_waiting()  # B2B orders waiting for stock, oldest first
        await self._supplier_ok(rule.supplier)
        return f"bought {len(codes)} ({rid}), imported {report.imported}"

    async def _settle(self, rule: RestockRule, rid: str, bought: int, imported: int = 0) -> None:
        """The purchase is over: its plan goes, the budget keeps only what was bought, the audit log says so."""
        shop = self.shop
        key = RESTOCK_PREFIX + rule.sku
        now = shop.clock.now()
        async with shop.uow(write=True) as uow:
            await uow.audit.lock_actor("restock", rule.sku)
            state = _load(await uow.meta.get(key))
            pending = state.get("pending")
            if not pending or pending.get("request_id") != rid:
                return  # settled by another run
            unused = (int(pending["qty"]) - bought) * int(pending["cost"])
            if pending.get("day") == state.get("day"):
                state["spent"] = max(0, int(state.get("spent", 0)) - unused)
            state["pending"] = None
            state["last"] = {"request_id": rid, "bought": bought, "at": now.isoformat()}
            await uow.meta.set(key, json.dumps(state))
            await uow.supplies.save(SupplyRequest(rid, rule.supplier, rule.supplier_sku, "buy",
                                                  "done" if bought else "failed", now, now, None, int(pending["qty"]),
                                                  bought * int(pending["cost"]),
                                                  detail=f"restock {rule.sku}: bought {bought}"))
            product = await uow.products.by_sku(rule.sku)
            await uow.audit.add_many([AuditEntry("restock", f"supplier:{rule.supplier}", "jobs", now,
                                                 product_id=product.id if product else None, detail={
                                                     "sku": rule.sku, "request_id": rid, "asked": pending["qty"],
                                                     "bought": bought, "imported": imported,
                                                     "cost": pending["cost"]})])
            await uow.commit()

    @staticmethod
    async def _listed_cost(supplier: Supplier, supplier_sku: str) -> int | None:
        for item in await supplier.products():
            sku = item.get("sku") if isinstance(item, dict) else getattr(item, "sku", None)
            if sku == supplier_sku:
                price = item.get("price") if isinstance(item, dict) else getattr(item, "price", None)
                return int(price) if price is not None else None
        return None

    # -- supplier health -----------------------------------------------------------------------------
    async def _supplier_ready(self, name: str, now: datetime) -> bool:
        async with self.shop.uow() as uow:
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
        retry_at = state.get("retry_at")
        return not retry_at or datetime.fromisoformat(retry_at) <= now

    async def _supplier_failed(self, name: str, exc: BaseException) -> None:
        """Back off (1 min, doubling, up to jobs.supplier_backoff_max_minutes); alert on the first failure only."""
        now = self.shop.clock.now()
        async with self.shop.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
            failures = int(state.get("failures", 0)) + 1
            wait = min(SUPPLIER_BACKOFF * 2 ** (failures - 1), self.config.backoff_max)
            state.update(failures=failures, retry_at=(now + wait).isoformat(),
                         error=f"{type(exc).__name__}: {exc}"[:200], since=state.get("since") or now.isoformat())
            await uow.meta.set(SUPPLIER_PREFIX + name, json.dumps(state))
            await uow.commit()
        log.warning("supplier %s failed (%d in a row), next try in %s: %s", name, failures, wait, type(exc).__name__)
        if failures == 1:
            await self.alerts.alert("alert.supplier_failing", {"supplier": name, "error": state["error"],
                                                               "minutes": max(1, int(wait.total_seconds() // 60))})

    async def _supplier_ok(self, name: str) -> None:
        async with self.shop.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            state = _load(await uow.meta.get(SUPPLIER_PREFIX + name))
            if not state.get("failures"):
                return
            await uow.meta.set(SUPPLIER_PREFIX + name, json.dumps({"failures": 0}))
            await uow.commit()
        await self.alerts.alert("alert.supplier_recovered", {"supplier": name, "failures": state["failures"]})

    async def _balance_level(self, name: str, *, low: bool, balance: int, sku: str, cost: int) -> None:
        """Alert once when a supplier's balance no longer pays for one code (again after it recovered)."""
        key = BALANCE_ALERT_PREFIX + name
        async with self.shop.uow(write=True) as uow:
            await uow.audit.lock_actor("supplier", name)
            before = await uow.meta.get(key) or "ok"
            level = "low" if low else "ok"
            if before == level:
                return
            await uow.meta.set(key, level)
            await uow.commit()
        if low:
            await self.alerts.alert("alert.supplier_balance_low", {"supplier": name, "balance": balance,
                                                                   "sku": sku, "cost": cost})


def _rank(level: str) -> int:
    return {"ok": 0, "low": 1, "out": 2}.get(level, 0)


def _load(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw else {}


def restock_rules(catalog: Sequence[Any]) -> list[RestockRule]:
    """RestockRules from the settings' catalogue (config.settings.Product entries with `restock:`)."""
    rules = []
    for p in catalog:
        rs = getattr(p, "restock", None)
        if rs is None:
            continue
        rules.append(RestockRule(p.sku, rs.below, rs.up_to, rs.supplier or getattr(p, "supplier", ""),
                                 rs.daily_budget, getattr(p, "supplier_sku", "") or p.sku, getattr(p, "cost", None)))
    return rules
