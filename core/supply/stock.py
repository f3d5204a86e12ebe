"""The pools' stock as the merchants hear of it, and codes taken out of it before they expire.

- Low and out-of-stock alerts (`alert.low_stock`, `alert.out_of_stock`): once per crossing downwards (ok -> low,
  low -> out), the level kept in `meta` as `alert.stock.<sku>`; back up is quiet.
- Codes whose `expires_at` falls within the margin are withdrawn (never sold; audited as `withdraw`) and the
  merchants told how many per product (`alert.codes_withdrawn`).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from core.alerts import AdminAlerts
from core.clock import Clock
from core.models import AuditEntry, Kind, Product, localized
from core.ports import Catalog, UnitOfWorkFactory

STOCK_ALERT_PREFIX = "alert.stock."


class ExpiringCodes(Protocol):
    """The set-based withdrawal of expiring codes (storage/jobs.py SqlJobStore)."""

    async def withdraw_expiring(self, cutoff: datetime) -> dict[int, int]:
        """Available codes expiring at or before cutoff become withdrawn (never sold); product id -> count."""


class StockWatch:
    """Runs the `stock-alerts` and `expire-codes` jobs. Each returns a one-line result for the job's record."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, catalog: Catalog, alerts: AdminAlerts,
                 codes: ExpiringCodes, *, low_stock: int = 5, expiry_margin: timedelta = timedelta(hours=1),
                 language: str = "en") -> None:
        self.uow = uow_factory
        self.clock = clock
        self.catalog = catalog
        self.alerts = alerts
        self.codes = codes
        self.low_stock = low_stock  # at or below: low
        self.expiry_margin = expiry_margin
        self.language = language  # the products' titles in the alerts

    async def pool_products(self) -> list[Product]:
        """The products sold from a pool of codes."""
        return [p for p in await self.catalog.products() if p.kind is Kind.CODE]

    async def stock_alerts(self) -> str:
        """Low-stock and out-of-stock alerts, once per crossing (the level is kept in meta)."""
        products = await self.pool_products()
        threshold = self.low_stock
        async with self.uow() as uow:
            counts = await uow.codes.available_counts([p.id for p in products], threshold + 1, self.clock.now())
        sent = []
        async with self.uow(write=True) as uow:
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

    async def expire_codes(self) -> str:
        """Withdraw codes that expire within the margin (they are never sold) and tell the merchants."""
        now = self.clock.now()
        cutoff = now + self.expiry_margin
        counts = await self.codes.withdraw_expiring(cutoff)
        if not counts:
            return "nothing expiring"
        products = {p.id: p for p in await self.catalog.products(include_inactive=True)}
        async with self.uow(write=True) as uow:
            before = cutoff.isoformat()
            await uow.audit.add_many([AuditEntry("withdraw", "system", "jobs", now, product_id=pid,
                                                 detail={"codes": n, "reason": "expiring", "before": before})
                                      for pid, n in sorted(counts.items())])
            await uow.commit()
        for pid, n in sorted(counts.items()):
            p = products.get(pid)
            await self.alerts.alert("alert.codes_withdrawn", {
                "sku": p.sku if p else str(pid), "title": self._title(p) if p else "", "n": n,
                "minutes": int(self.expiry_margin.total_seconds() // 60)})
        return "withdrawn " + ", ".join(f"{products[pid].sku if pid in products else pid}:{n}"
                                        for pid, n in sorted(counts.items()))

    def _title(self, p: Product) -> str:
        return localized(p.title, self.language, self.language)


def _rank(level: str) -> int:
    return {"ok": 0, "low": 1, "out": 2}.get(level, 0)
