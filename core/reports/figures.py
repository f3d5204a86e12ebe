"""What a report shows (`Figures`) and the aggregate rows storage hands over to build it (`SalesRow`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from core.reports.period import Period

CHANNELS = {"telegram": "telegram", "wechat": "wechat", "api": "b2b"}  # buyer_channel -> report channel
PAID = ("pending", "delivered", "refunding", "refunded")  # statuses of an order that was paid
REFUNDED = ("refunding", "refunded")


@dataclass(frozen=True, slots=True)
class SalesRow:
    """Paid orders of one product, currency, buyer channel and status in a period (one GROUP BY row)."""

    product_id: int
    sku: str
    currency: str
    channel: str
    status: str
    orders: int
    units: int
    amount: int


@dataclass(frozen=True, slots=True)
class ProductFigures:
    """One product's kept sales (refunds left out) in one currency, and its stock cover."""

    sku: str
    currency: str
    orders: int
    units: int
    revenue: int


@dataclass(frozen=True, slots=True)
class StockCover:
    """Codes available now, units sold a day on average over the period, and days that lasts (None: none sold)."""

    sku: str
    available: int
    daily_units: float
    days_of_cover: float | None


@dataclass(frozen=True, slots=True)
class Figures:
    """A period's figures. Money in minor units per currency (Stars `XTR` apart as its own currency); revenue is
    what was paid and not refunded."""

    period: Period
    revenue: dict[str, int]
    orders_paid: int  # every order paid in the period, refunded or not
    orders_kept: dict[str, int]  # per currency, orders paid and not refunded
    buyers: int
    repeat_buyers: int  # buyers with two or more paid orders in the period
    refunds: int
    refunded: dict[str, int]  # money refunded (or being refunded) per currency
    by_channel: dict[str, dict[str, int]]  # channel -> currency -> revenue
    orders_by_channel: dict[str, int]
    products: list[ProductFigures]
    daily: list[tuple[date, dict[str, int]]]  # each day of the period: revenue per currency
    stock: list[StockCover] = field(default_factory=list)

    @property
    def average_order(self) -> dict[str, int]:
        """Revenue over kept orders, per currency (minor units, rounded down)."""
        return {c: self.revenue[c] // n for c, n in self.orders_kept.items() if n}

    @property
    def refund_rate(self) -> float:
        return self.refunds / self.orders_paid if self.orders_paid else 0.0

    @property
    def repurchase_rate(self) -> float:
        return self.repeat_buyers / self.buyers if self.buyers else 0.0

    @property
    def reseller_revenue(self) -> dict[str, int]:
        """What resellers bought through the B2B API."""
        return dict(self.by_channel.get("b2b", {}))

    def top_by_revenue(self, n: int = 5) -> list[ProductFigures]:
        return sorted(self.products, key=lambda p: (-p.revenue, p.sku))[:n]

    def top_by_units(self, n: int = 5) -> list[ProductFigures]:
        return sorted(self.products, key=lambda p: (-p.units, p.sku))[:n]
