"""Restock: codes bought from a supplier for pools below their safety line, within each product's daily budget.

Per product with `restock:` (a RestockRule), when fewer than `below` codes are available, `up_to − available` are
bought (fewer when the day's budget or the supplier's balance does not pay for them) and imported into the vault
like `codes import`. The purchase is planned in a locked transaction that reserves its cost against the day's
budget and writes the request id (`rs-<sku>-<day>-<n>`) before the supplier is called; a crash or a lost answer
leaves that plan pending and the next run asks again with the same id (the supplier never buys twice for one
id), so a crash never double-buys and the budget is never overrun. A refusal settles the plan with nothing
bought and gives its budget back. The state is the `meta` row `restock.<sku>`; each purchase is in the supplier
ledger (`supply_requests`) and the audit log (`restock`). Whether the supplier may be asked at all, and the
alerts about it, are supplier health's (health.py).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, TypedDict
from zoneinfo import ZoneInfo

from core.alerts import AdminAlerts
from core.clock import Clock
from core.models import AuditEntry, Kind, Product, SupplyRequest
from core.ports import Catalog, UnitOfWorkFactory
from core.supply.health import SupplierHealth
from core.supply.inventory import import_codes
from core.vault import Vault

log = logging.getLogger(__name__)

RESTOCK_PREFIX = "restock."


class Plan(TypedDict):
    """A planned purchase (the `pending` of a product's restock state): its request id, how many, at what unit cost,
    and the budget's day it counts against."""

    request_id: str
    qty: int
    cost: int
    day: str


@dataclass(frozen=True, slots=True)
class RestockRule:
    """A product's `restock:`: below `below` available codes, buy up to `up_to` from `supplier`."""

    sku: str
    below: int
    up_to: int
    supplier: str
    daily_budget: int
    supplier_sku: str
    cost: int | None = None  # None: the supplier's listed price


class RestockSupplier(Protocol):
    """What restock needs of core.ports.Supplier (errors: core.errors.SupplierError with `retryable`)."""

    name: str

    async def balance(self) -> int: ...
    async def products(self) -> Sequence[object]: ...
    async def buy(self, supplier_sku: str, qty: int, request_id: str) -> list[str]: ...


class RestockDesk:
    """Runs the `restock` job: for each rule, plan a purchase, buy it, import the codes, settle the plan."""

    def __init__(self, uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock, catalog: Catalog,
                 health: SupplierHealth, alerts: AdminAlerts, suppliers: Mapping[str, RestockSupplier],
                 rules: Sequence[RestockRule], *, zone: str = "UTC",
                 on_stocked: Callable[[], Awaitable[object]] | None = None) -> None:
        self.uow = uow_factory
        self.vault = vault
        self.clock = clock
        self.catalog = catalog
        self.health = health
        self.alerts = alerts
        self.suppliers = suppliers  # by name
        self.rules = list(rules)
        self.zone = ZoneInfo(zone)  # the budget's day
        self.on_stocked = on_stocked  # after codes came in: B2B orders waiting for stock, oldest first

    def today(self) -> date:
        return self.clock.now().astimezone(self.zone).date()

    async def restock(self) -> str:
        """Buy codes for pools below their safety line, within each product's daily budget."""
        results = []
        balances: dict[str, int] = {}  # asked once per supplier per run, then counted down here
        for rule in self.rules:
            try:
                out = await self.restock_one(rule, balances)
            except Exception as exc:  # noqa: BLE001 - one product's trouble must not stop the others
                log.exception("restock of %s failed", rule.sku)
                out = f"error {type(exc).__name__}"
            if out:
                results.append(f"{rule.sku}: {out}")
        return "; ".join(results) or "nothing to restock"

    async def restock_one(self, rule: RestockRule, balances: dict[str, int] | None = None) -> str:
        product = await self.catalog.product_by_sku(rule.sku)
        if product is None or not product.active or product.kind is not Kind.CODE:
            return "not on sale" if product is not None else "unknown SKU"
        supplier = self.suppliers.get(rule.supplier)
        if supplier is None:
            return f"no supplier {rule.supplier!r}"
        now = self.clock.now()
        key = RESTOCK_PREFIX + rule.sku
        async with self.uow() as uow:
            state = _load(await uow.meta.get(key))
            counts = await uow.codes.available_counts([product.id], rule.up_to, now)
        available = counts.get(product.id, 0)
        pending: Plan | None = state.get("pending")
        if pending is None and available >= rule.below:
            return ""
        if not await self.health.ready(rule.supplier, now):
            return "supplier backing off"
        if pending is None:
            try:
                cost = rule.cost if rule.cost is not None else await _listed_cost(supplier, rule.supplier_sku)
                if cost is None:
                    return f"no price for {rule.supplier_sku} at {rule.supplier}"
                balance = balances[rule.supplier] if balances and rule.supplier in balances \
                    else await supplier.balance()
            except Exception as exc:  # noqa: BLE001 - SupplierError, timeouts, transport errors
                await self.health.failed(rule.supplier, exc)
                return f"supplier failed: {type(exc).__name__}"
            affordable = balance // cost if cost > 0 else rule.up_to
            await self.health.balance_level(rule.supplier, low=affordable < 1, balance=balance, sku=rule.sku,
                                            cost=cost)
            if affordable < 1:
                return f"supplier balance {balance} below cost {cost}"
            planned = await self._plan(rule, product, cost, affordable)
            if isinstance(planned, str):
                return planned
            pending = planned
            if balances is not None:
                balances[rule.supplier] = balance - int(pending["qty"]) * int(pending["cost"])
        return await self._buy(rule, supplier, pending)

    async def _plan(self, rule: RestockRule, product: Product, cost: int, affordable: int) -> Plan | str:
        """Reserve the purchase against today's budget and write its request id, before any supplier call."""
        key = RESTOCK_PREFIX + rule.sku
        day = self.today().isoformat()
        alert: tuple[str, dict[str, Any]] | None = None
        async with self.uow(write=True) as uow:
            await uow.audit.lock_actor("restock", rule.sku)  # PostgreSQL: one planner per product at a time
            state = _load(await uow.meta.get(key))
            if state.get("pending"):
                planned: Plan = state["pending"]  # planned meanwhile (another run): carry on with it
                return planned
            if state.get("day") != day:
                state.update(day=day, spent=0, seq=0)
            counts = await uow.codes.available_counts([product.id], rule.up_to, self.clock.now())
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
                result: Plan | str = f"daily budget left {left} < cost {cost}"
            else:
                seq = int(state.get("seq", 0)) + 1
                pending = Plan(request_id=f"rs-{rule.sku}-{day.replace('-', '')}-{seq}", qty=qty, cost=cost, day=day)
                state.update(seq=seq, spent=int(state.get("spent", 0)) + qty * cost, pending=pending)
                await uow.meta.set(key, json.dumps(state))
                now = self.clock.now()  # the supplier ledger (desk.py) sees restock purchases too
                await uow.supplies.save(SupplyRequest(pending["request_id"], rule.supplier, rule.supplier_sku, "buy",
                                                      "pending", now, now, None, qty, qty * cost,
                                                      detail=f"restock {rule.sku}"))
                await uow.commit()
                result = pending
        if alert is not None:
            await self.alerts.alert(*alert)
        return result

    async def _buy(self, rule: RestockRule, supplier: RestockSupplier, pending: Plan) -> str:
        rid, qty = str(pending["request_id"]), int(pending["qty"])
        try:
            codes = await supplier.buy(rule.supplier_sku, qty, rid)
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "retryable", True):  # maybe bought: keep the plan, ask again with the same id
                await self.health.failed(rule.supplier, exc)
                return f"buy {rid} failed (will retry): {type(exc).__name__}"
            await self._settle(rule, rid, bought=0)  # refused: nothing bought; the budget is given back
            await self.health.failed(rule.supplier, exc)
            return f"buy {rid} refused: {exc}"[:200]
        codes = codes[:qty]  # never more into the pool than was paid for
        report = await import_codes(self.uow, self.vault, self.clock, rule.sku,
                                    [(c + "\n").encode() for c in codes], actor=f"supplier:{rule.supplier}",
                                    channel="jobs")
        await self._settle(rule, rid, bought=len(codes), imported=report.imported)
        if report.imported and self.on_stocked is not None:
            await self.on_stocked()
        await self.health.succeeded(rule.supplier)
        return f"bought {len(codes)} ({rid}), imported {report.imported}"

    async def _settle(self, rule: RestockRule, rid: str, bought: int, imported: int = 0) -> None:
        """The purchase is over: its plan goes, the budget keeps only what was bought, the audit log says so."""
        key = RESTOCK_PREFIX + rule.sku
        now = self.clock.now()
        async with self.uow(write=True) as uow:
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
                                                  "done" if bought else "failed", now, now, None,
                                                  bought or int(pending["qty"]),  # done: what came (reports' cost)
                                                  bought * int(pending["cost"]),
                                                  detail=f"restock {rule.sku}: bought {bought}"))
            product = await uow.products.by_sku(rule.sku)
            await uow.audit.add_many([AuditEntry("restock", f"supplier:{rule.supplier}", "jobs", now,
                                                 product_id=product.id if product else None, detail={
                                                     "sku": rule.sku, "request_id": rid, "asked": pending["qty"],
                                                     "bought": bought, "imported": imported,
                                                     "cost": pending["cost"]})])
            await uow.commit()


async def _listed_cost(supplier: RestockSupplier, supplier_sku: str) -> int | None:
    """The supplier's price for its SKU (its product list), or None when it does not list it."""
    for item in await supplier.products():
        sku = item.get("sku") if isinstance(item, dict) else getattr(item, "sku", None)
        if sku == supplier_sku:
            price = item.get("price") if isinstance(item, dict) else getattr(item, "price", None)
            return int(price) if price is not None else None
    return None


def _load(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw else {}
