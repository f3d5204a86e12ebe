"""The report desk: a period's figures from the database's aggregates (`uow.reports`) and the codes in stock; the
funnel's events as they happen (`viewed`, `invoiced`: core/reports/events.py); the period's orders as a CSV file.

Where the figures come from:
- sales, refunds, buyers, channels, the daily series: the orders paid in the period (storage/reports.py). A
  group-chat order is its member's (buyer channel `telegram`); its quote in `group_orders` tells it apart, and it
  is counted under "group" instead.
- the funnel: views and invoices from the event counters; paid and delivered from the orders of the same chat
  channels (group and B2B orders never pass a product page or an invoice, so they are left out of it).
- cost and margin: a product's unit cost is its `cost` in the catalogue; without one, what its restock purchases
  in the PURCHASE_WINDOW before the period's end cost a unit on average (the supplier ledger); else unknown.
- stock cover: codes available now over the units sold a day in the period.
- reseller sales: orders paid from a reseller's wallet (B2B API and group chats), per reseller.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from core.batching import GroupCommitter
from core.clock import Clock
from core.models import AuditEntry
from core.ports import UnitOfWorkFactory
from core.reports.errors import ReportCode, ReportsError
from core.reports.events import EventCount, EventTally
from core.reports.export import MAX_ROWS, OrdersExport, orders_csv
from core.reports.figures import (
    CHANNELS,
    REFUNDED,
    RESELLER_CHANNELS,
    Figures,
    Funnel,
    ProductFigures,
    ResellerSales,
    SalesRow,
    StockCover,
)
from core.reports.period import Period, parse_period, period_between

PURCHASE_WINDOW = timedelta(days=90)  # restock purchases that price a product without a configured cost

Group = tuple[int, str, str, str, str, int | None]  # product id, sku, currency, channel, status, reseller


def _add(into: dict[str, int], key: str, n: int) -> None:
    into[key] = into.get(key, 0) + n


def relabel(rows: list[SalesRow], groups: list[SalesRow]) -> list[SalesRow]:
    """The sales rows with the group-chat orders moved from their member's channel to channel "group"."""
    table: dict[Group, list[int]] = {}
    for r in rows:
        into = table.setdefault((r.product_id, r.sku, r.currency, r.channel, r.status, r.reseller), [0, 0, 0])
        into[0] += r.orders
        into[1] += r.units
        into[2] += r.amount
    for g in groups:
        member = table.get((g.product_id, g.sku, g.currency, g.channel, g.status, None))
        if member is not None:
            member[0] -= g.orders
            member[1] -= g.units
            member[2] -= g.amount
        into = table.setdefault((g.product_id, g.sku, g.currency, "group", g.status, g.reseller), [0, 0, 0])
        into[0] += g.orders
        into[1] += g.units
        into[2] += g.amount
    return [SalesRow(pid, sku, cur, ch, st, n, units, amount, reseller)
            for (pid, sku, cur, ch, st, reseller), (n, units, amount) in table.items() if n > 0]


class ReportDesk:
    """Parses periods in the store's zone (`jobs.timezone`) and builds their `Figures`."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, *, zone: str = "UTC",
                 committer: GroupCommitter | None = None) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.zone = zone
        self.currency = ""  # the store currency: what costs are in
        self.costs: dict[str, int] = {}  # SKU -> what one costs the shop (the catalogue's `cost`)
        self.restocks: dict[str, tuple[str, str]] = {}  # SKU -> (supplier, supplier SKU) its restock buys
        # The funnel's events ride with the shop's group commits; None (a desk on its own): not counted.
        self.events = EventTally(clock, committer, lambda: self.zone) if committer is not None else None

    def configure(self, *, zone: str, currency: str, costs: dict[str, int],
                  restocks: dict[str, tuple[str, str]]) -> ReportDesk:
        """The store's zone and currency, and where products' costs come from (app/bootstrap.py)."""
        self.zone, self.currency, self.costs, self.restocks = zone, currency, dict(costs), dict(restocks)
        return self

    # -- events -----------------------------------------------------------------------------------
    def viewed(self, product_id: int, channel: str) -> None:
        """A buyer opened a product's page (counted in memory, written with the next group commit)."""
        if self.events is not None:
            self.events.view(product_id, channel)

    def invoiced(self, product_id: int, channel: str) -> None:
        """An order was held for a buyer to pay."""
        if self.events is not None:
            self.events.invoice(product_id, channel)

    # -- periods ----------------------------------------------------------------------------------
    def period(self, text: str) -> Period:
        """`today`, `7d`, `30d` or `YYYY-MM-DD..YYYY-MM-DD` (core/reports/period.py decides what is refused)."""
        return parse_period(text, self.clock.now(), self.zone)

    def between(self, first: str, last: str) -> Period:
        """A range from its two dates as typed (`--from`, `--to`)."""
        return parse_period(f"{first}..{last}", self.clock.now(), self.zone)

    def period_of(self, first: datetime, last: datetime) -> Period:
        return period_between(first.date(), last.date(), self.clock.now(), self.zone)

    # -- figures ----------------------------------------------------------------------------------
    async def figures(self, period: Period) -> Figures:
        start, end = period.start, period.end
        if self.events is not None:  # this process's latest views and invoices count too
            await self.events.flush()
        async with self.uow() as uow:
            groups = await uow.reports.group_sales(start, end)
            rows = relabel(await uow.reports.sales(start, end), groups)
            wallet = groups + await uow.reports.api_sales(start, end)  # paid from a reseller's wallet
            buyers, repeat = await uow.reports.buyers(start, end)
            per_day = await uow.reports.daily(start, end, period.zone)
            events = await uow.reports.events(period.first, period.last)
            purchases = await uow.reports.purchases(end - PURCHASE_WINDOW, end) if self.restocks else {}
            names = await uow.reports.reseller_names(sorted({r.reseller for r in wallet if r.reseller is not None}))
            stock = await uow.codes.stock(self.clock.now())
        unit_costs = dict(self.costs)
        for sku, source in self.restocks.items():
            units, cost = purchases.get(source, (0, 0))
            if sku not in unit_costs and units:
                unit_costs[sku] = round(cost / units)
        daily = [(day, per_day.get(day, {})) for day in period.dates()]
        return self._figures(period, rows, buyers, repeat, daily, stock_lines=[(s.sku, s.available) for s in stock],
                             events=events, unit_costs=unit_costs, resellers=self._resellers(wallet, names))

    @staticmethod
    def _resellers(wallet: list[SalesRow], names: dict[int, str]) -> list[ResellerSales]:
        """Each reseller's kept orders and revenue, best first."""
        per: dict[int, tuple[list[int], dict[str, int]]] = {}
        for r in wallet:
            if r.reseller is not None and r.status not in REFUNDED:
                count, money = per.setdefault(r.reseller, ([0], {}))
                count[0] += r.orders
                _add(money, r.currency, r.amount)
        return sorted((ResellerSales(rid, names.get(rid, f"#{rid}"), n[0], money) for rid, (n, money) in per.items()),
                      key=lambda s: (-sum(s.revenue.values()), s.name))

    def _figures(self, period: Period, rows: list[SalesRow], buyers: int, repeat: int,
                 daily: list[tuple[date, dict[str, int]]], *, stock_lines: list[tuple[str, int]],
                 events: list[EventCount], unit_costs: dict[str, int], resellers: list[ResellerSales]) -> Figures:
        revenue: dict[str, int] = {}
        kept: dict[str, int] = {}
        refunded: dict[str, int] = {}
        by_channel: dict[str, dict[str, int]] = {}
        orders_by_channel: dict[str, int] = {}
        products: dict[tuple[str, str], list[int]] = {}
        units_by_sku: dict[str, int] = {}
        funnel: dict[str, list[int]] = {}  # chat channel -> [views, invoices, paid, delivered]
        refunds = paid = 0
        for e in events:
            stages = funnel.setdefault(CHANNELS.get(e.channel, e.channel), [0, 0, 0, 0])
            stages[0 if e.kind == "view" else 1] += e.n
        for r in rows:
            paid += r.orders
            channel = CHANNELS.get(r.channel, r.channel)
            _add(orders_by_channel, channel, r.orders)
            if channel not in RESELLER_CHANNELS:
                stages = funnel.setdefault(channel, [0, 0, 0, 0])
                stages[2] += r.orders
                stages[3] += r.orders if r.status == "delivered" else 0
            if r.status in REFUNDED:
                refunds += r.orders
                _add(refunded, r.currency, r.amount)
                continue
            _add(revenue, r.currency, r.amount)
            _add(kept, r.currency, r.orders)
            _add(by_channel.setdefault(channel, {}), r.currency, r.amount)
            p = products.setdefault((r.sku, r.currency), [0, 0, 0])
            p[0] += r.orders
            p[1] += r.units
            p[2] += r.amount
            _add(units_by_sku, r.sku, r.units)
        cover = []
        for sku, available in stock_lines:
            per_day = units_by_sku.get(sku, 0) / period.days
            cover.append(StockCover(sku, available, per_day, available / per_day if per_day else None))
        return Figures(
            period=period, revenue=revenue, orders_paid=paid, orders_kept=kept, buyers=buyers, repeat_buyers=repeat,
            refunds=refunds, refunded=refunded, by_channel=by_channel, orders_by_channel=orders_by_channel,
            products=[ProductFigures(sku, cur, o, u, a, unit_costs.get(sku), self.currency or cur)
                      for (sku, cur), (o, u, a) in sorted(products.items())],
            daily=daily, stock=cover, funnel_by_channel={ch: Funnel(*s) for ch, s in sorted(funnel.items())},
            resellers=resellers)

    # -- export -----------------------------------------------------------------------------------
    async def export_orders(self, period: Period, *, actor: str, channel: str) -> OrdersExport:
        """The period's paid orders as CSV (never a code), audited as `export`; more than MAX_ROWS refused."""
        async with self.uow() as uow:
            lines = await uow.reports.orders(period.start, period.end, MAX_ROWS + 1)
        if len(lines) > MAX_ROWS:
            raise ReportsError(ReportCode.REPORT_EXPORT_TOO_BIG, period=period.label, most=MAX_ROWS)
        out = orders_csv(period, lines)
        async with self.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("export", actor, channel, self.clock.now(), detail={
                "what": "orders", "period": period.label, "zone": period.zone, "rows": out.rows, "format": "csv"})])
            await uow.commit()
        return out
