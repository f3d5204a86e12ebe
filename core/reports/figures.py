"""What a report shows (`Figures`) and the aggregate rows storage hands over to build it (`SalesRow`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from core.reports.period import Period

# buyer_channel -> report channel; a group-chat order (core/groups.py) is its member's (`telegram`), told apart by
# its quote in `group_orders` and counted as "group" (storage/reports.py `group_sales`)
CHANNELS = {"telegram": "telegram", "wechat": "wechat", "api": "b2b", "group": "group"}
RESELLER_CHANNELS = ("b2b", "group")  # orders paid from a reseller's wallet
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
    reseller: int | None = None  # the reseller whose wallet paid (group_sales, api_sales)


@dataclass(frozen=True, slots=True)
class ProductFigures:
    """One product's kept sales (refunds left out) in one currency, and what they cost the shop: `unit_cost` in
    `cost_currency` (the store currency), None when unknown (no `cost` configured, no supplier purchase recorded)."""

    sku: str
    currency: str
    orders: int
    units: int
    revenue: int
    unit_cost: int | None = None
    cost_currency: str = ""

    @property
    def cost(self) -> int | None:
        """Cost of the goods sold: units × unit cost."""
        return None if self.unit_cost is None else self.units * self.unit_cost

    @property
    def margin(self) -> int | None:
        """Revenue less cost, when both are in one currency (Stars sales have no rate to the store currency)."""
        cost = self.cost
        return None if cost is None or self.currency != self.cost_currency else self.revenue - cost


@dataclass(frozen=True, slots=True)
class Funnel:
    """The storefront's funnel over a period: product pages opened, orders held for payment (invoices), orders paid,
    orders delivered (and not refunded). Group-chat and B2B API orders are left out: they skip the first two."""

    views: int = 0
    invoices: int = 0
    paid: int = 0
    delivered: int = 0

    def stages(self) -> list[tuple[str, int]]:
        return [("view", self.views), ("invoice", self.invoices), ("paid", self.paid), ("delivered", self.delivered)]

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(self.views + other.views, self.invoices + other.invoices, self.paid + other.paid,
                      self.delivered + other.delivered)


@dataclass(frozen=True, slots=True)
class ResellerSales:
    """What one reseller bought in the period (API and group orders, refunds left out)."""

    reseller_id: int
    name: str
    orders: int
    revenue: dict[str, int]


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
    funnel_by_channel: dict[str, Funnel] = field(default_factory=dict)  # chat channels (telegram, wechat, ...)
    resellers: list[ResellerSales] = field(default_factory=list)  # best first

    @property
    def funnel(self) -> Funnel:
        return sum(self.funnel_by_channel.values(), Funnel())

    @property
    def cost_of_goods(self) -> dict[str, int]:
        """What the goods sold cost the shop, per cost currency, over the products whose cost is known."""
        out: dict[str, int] = {}
        for p in self.products:
            if p.cost is not None:
                out[p.cost_currency] = out.get(p.cost_currency, 0) + p.cost
        return out

    @property
    def margin(self) -> dict[str, int]:
        """Revenue less cost per currency, over the products whose cost is known in that currency."""
        out: dict[str, int] = {}
        for p in self.products:
            if p.margin is not None:
                out[p.currency] = out.get(p.currency, 0) + p.margin
        return out

    @property
    def margin_rate(self) -> dict[str, float]:
        """Margin over the revenue it was made on, per currency."""
        base: dict[str, int] = {}
        for p in self.products:
            if p.margin is not None:
                base[p.currency] = base.get(p.currency, 0) + p.revenue
        return {c: m / base[c] for c, m in self.margin.items() if base.get(c)}

    @property
    def uncosted(self) -> list[str]:
        """Products sold whose cost is unknown (left out of cost and margin)."""
        return sorted({p.sku for p in self.products if p.unit_cost is None})

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
        """What resellers bought, paid from their wallets: the B2B API and their group chats."""
        out: dict[str, int] = {}
        for ch in RESELLER_CHANNELS:
            for c, a in self.by_channel.get(ch, {}).items():
                out[c] = out.get(c, 0) + a
        return out

    def top_by_revenue(self, n: int = 5) -> list[ProductFigures]:
        return sorted(self.products, key=lambda p: (-p.revenue, p.sku))[:n]

    def top_by_units(self, n: int = 5) -> list[ProductFigures]:
        return sorted(self.products, key=lambda p: (-p.units, p.sku))[:n]
