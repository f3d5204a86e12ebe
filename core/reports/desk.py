"""The report desk: a period's figures from the database's aggregates (`uow.reports`) and the codes in stock."""
from __future__ import annotations

from datetime import date, datetime

from core.clock import Clock
from core.ports import UnitOfWorkFactory
from core.reports.figures import CHANNELS, REFUNDED, Figures, ProductFigures, SalesRow, StockCover
from core.reports.period import Period, parse_period, period_between


def _add(into: dict[str, int], key: str, n: int) -> None:
    into[key] = into.get(key, 0) + n


class ReportDesk:
    """Parses periods in the store's zone (`jobs.timezone`) and builds their `Figures`."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, *, zone: str = "UTC") -> None:
        self.uow = uow_factory
        self.clock = clock
        self.zone = zone

    def period(self, text: str) -> Period:
        """`today`, `7d`, `30d` or `YYYY-MM-DD..YYYY-MM-DD` (core/reports/period.py decides what is refused)."""
        return parse_period(text, self.clock.now(), self.zone)

    def between(self, first: str, last: str) -> Period:
        """A range from its two dates as typed (`--from`, `--to`)."""
        return parse_period(f"{first}..{last}", self.clock.now(), self.zone)

    def period_of(self, first: datetime, last: datetime) -> Period:
        return period_between(first.date(), last.date(), self.clock.now(), self.zone)

    async def figures(self, period: Period) -> Figures:
        start, end = period.start, period.end
        async with self.uow() as uow:
            rows = await uow.reports.sales(start, end)
            buyers, repeat = await uow.reports.buyers(start, end)
            per_day = await uow.reports.daily(start, end, period.zone)
            stock = await uow.codes.stock(self.clock.now())
        daily = [(day, per_day.get(day, {})) for day in period.dates()]
        return self._figures(period, rows, buyers, repeat, daily, stock_lines=[(s.sku, s.available) for s in stock])

    @staticmethod
    def _figures(period: Period, rows: list[SalesRow], buyers: int, repeat: int,
                 daily: list[tuple[date, dict[str, int]]], *, stock_lines: list[tuple[str, int]]) -> Figures:
        revenue: dict[str, int] = {}
        kept: dict[str, int] = {}
        refunded: dict[str, int] = {}
        by_channel: dict[str, dict[str, int]] = {}
        orders_by_channel: dict[str, int] = {}
        products: dict[tuple[str, str], list[int]] = {}
        units_by_sku: dict[str, int] = {}
        refunds = paid = 0
        for r in rows:
            paid += r.orders
            channel = CHANNELS.get(r.channel, r.channel)
            _add(orders_by_channel, channel, r.orders)
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
            products=[ProductFigures(sku, cur, o, u, a) for (sku, cur), (o, u, a) in sorted(products.items())],
            daily=daily,
            stock=cover)
