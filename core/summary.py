"""The merchants' daily summary (`alert.daily_summary`, the `daily-summary` job at `jobs.daily_summary_at`).

The last 24 hours' delivered orders and revenue per currency, refunds, each pool's stock, outbox rows that
failed or are retrying, jobs whose last run failed, and suppliers failing now; times in `jobs.timezone`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from core.alerts import AdminAlerts
from core.clock import Clock
from core.ports import UnitOfWorkFactory
from core.supply import StockWatch, SupplierHealth


class SummaryFigures(Protocol):
    """What the summary counts beyond the repositories (storage/jobs.py SqlJobStore); sales come from the reports'
    aggregates (`uow.reports`, core/reports/)."""

    async def failures_between(self, start: datetime, end: datetime) -> dict[str, int]: ...
    async def records(self) -> dict[str, dict[str, Any]]:
        """Each scheduled job's record by name (`ok`: whether its last run succeeded)."""


class DailySummary:
    """Runs the `daily-summary` job."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, stock: StockWatch, health: SupplierHealth,
                 alerts: AdminAlerts, figures: SummaryFigures, *, zone: str = "UTC") -> None:
        self.uow = uow_factory
        self.clock = clock
        self.stock = stock  # which products are pools
        self.health = health  # which suppliers are failing
        self.alerts = alerts
        self.figures = figures
        self.zone = ZoneInfo(zone)

    async def daily_summary(self, end: datetime | None = None) -> str:
        """Yesterday's sales, today's stock and the day's failures, to the merchants."""
        now = self.clock.now()
        end = end or now
        start = end - timedelta(days=1)
        pools = {p.id for p in await self.stock.pool_products()}
        async with self.uow() as uow:
            lines = await uow.reports.sales(start, end)
            stock = [s for s in await uow.codes.stock(self.clock.now()) if s.product_id in pools]
        orders = sum(x.orders for x in lines if x.status == "delivered")
        revenue: dict[str, int] = {}
        for x in lines:
            if x.status == "delivered":
                revenue[x.currency] = revenue.get(x.currency, 0) + x.amount
        refunds = sum(x.orders for x in lines if x.status in ("refunding", "refunded"))
        failures = await self.figures.failures_between(start, end)
        records = await self.figures.records()
        failed_jobs = sorted(name for name, r in records.items() if r.get("ok") is False)
        failing = await self.health.failing()
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


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"
