"""The merchant's reports in the chat (core/reports/):

    /report [today|7d|30d|YYYY-MM-DD..YYYY-MM-DD]   the key figures as text, then three charts as images (daily
                                                    revenue, the funnel, top products)
    /export [today|7d|30d|YYYY-MM-DD..YYYY-MM-DD]   the period's paid orders as a CSV file (a protected document)

Figures only in /report (no buyer, no code); the export has each order's buyer but never a code. A period that
makes no sense is refused with why (ReportsError), and audited like every refused merchant command; an export is
audited as `export` (who, the period, how many rows).

Charts are drawn by handlers/charts.py (matplotlib) in a worker thread, imported on the first report only: the
chat's other flows never load matplotlib. A screen carrying a chart has the chart's title and the PNG
(`Screen.image`); each adapter sends it after the text (Telegram: a photo; WeChat: a customer-service image).
When a chart cannot be drawn (no CJK font), the text says so and goes out alone.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from core.models import localized
from core.reports import Figures, ReportsError, decimal
from handlers import errors
from handlers.merchant import AdminCtx
from handlers.screen import Screen
from locales import Translator

if TYPE_CHECKING:
    from handlers.admin import AdminFlow

log = logging.getLogger(__name__)

COMMAND = "/report"
EXPORT = "/export"
COMMANDS = frozenset({COMMAND, EXPORT})
TOP = 5  # products and resellers shown by revenue
TOP_CHART = 8  # products in the chart
LOW_COVER_DAYS = 7  # stock for fewer days than this is named
LABEL_WIDTH = 24  # characters of a product's name on the chart


def _channel(i18n: Translator, lang: str, channel: str) -> str:
    """A channel's name in the language; one without a name (a test channel) as it is."""
    key = f"reports.channel.{channel}"
    return i18n.t(lang, key) if key in i18n.catalogs[i18n.default] else channel


def render(i18n: Translator, lang: str, f: Figures) -> Screen:
    """The figures as a chat screen."""
    t = i18n.t

    def listed(per: dict[str, int]) -> str:
        return ", ".join(i18n.money(a, c, lang) for c, a in sorted(per.items())) or "0"

    lines = [t(lang, "reports.body", orders=f.orders_paid, revenue=listed(f.revenue), average=listed(f.average_order),
               buyers=f.buyers, repeat=f"{f.repurchase_rate:.0%}", refunds=f.refunds, rate=f"{f.refund_rate:.0%}")]
    funnel = f.funnel
    if funnel.views or funnel.invoices or funnel.paid:
        lines.append(t(lang, "reports.funnel", views=funnel.views, invoices=funnel.invoices, paid=funnel.paid,
                       delivered=funnel.delivered))
    if f.cost_of_goods:
        margin = ", ".join(f"{i18n.money(m, c, lang)} ({f.margin_rate.get(c, 0):.0%})"
                           for c, m in sorted(f.margin.items())) or "—"
        lines.append(t(lang, "reports.margin", cost=listed(f.cost_of_goods), margin=margin))
    if f.uncosted and f.products:
        lines.append(t(lang, "reports.uncosted", products=", ".join(f.uncosted)))
    if f.by_channel:
        lines.append(t(lang, "reports.channels"))
        lines += [t(lang, "reports.channel", channel=_channel(i18n, lang, ch),
                        orders=f.orders_by_channel.get(ch, 0), revenue=listed(per))
                  for ch, per in sorted(f.by_channel.items())]
    if f.products:
        lines.append(t(lang, "reports.top"))
        lines += [t(lang, "reports.product", sku=p.sku, units=p.units, revenue=i18n.money(p.revenue, p.currency, lang))
                  for p in f.top_by_revenue(TOP)]
    if f.resellers:
        lines.append(t(lang, "reports.resellers", revenue=listed(f.reseller_revenue)))
        lines += [t(lang, "reports.reseller", name=r.name, orders=r.orders, revenue=listed(r.revenue))
                  for r in f.resellers[:TOP]]
    low = [s for s in f.stock if s.days_of_cover is not None and s.days_of_cover < LOW_COVER_DAYS]
    if low:
        lines.append(t(lang, "reports.cover", products=", ".join(f"{s.sku} {s.days_of_cover:.1f}" for s in low)))
    return Screen(t(lang, "reports.title", period=f.period.label, zone=f.period.zone), "\n".join(lines))


# -- charts ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChartData:
    """What the three charts show, already translated: plain data for handlers/charts.py."""

    daily_title: str
    currency: str
    daily: list[tuple[date, float]]
    funnel_title: str
    funnel: list[tuple[str, int]]
    top_title: str
    top: list[tuple[str, float]]


def chart_data(i18n: Translator, lang: str, f: Figures, titles: dict[str, str]) -> ChartData:
    """The period's data for the charts. Daily revenue in the currency that took the most (Stars only when
    nothing else sold), in major units; the storefront's funnel; products by units sold, named in the language
    (`titles`: SKU -> name)."""
    t = i18n.t
    money = [c for c in f.revenue if c != "XTR"] or list(f.revenue)
    currency = max(money, key=lambda c: (f.revenue[c], c)) if money else ""
    daily = [(day, float(decimal(per.get(currency, 0), currency)) if currency else 0.0) for day, per in f.daily]
    units: dict[str, int] = {}
    for p in f.products:
        units[p.sku] = units.get(p.sku, 0) + p.units
    best = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CHART]
    top = [(_clip(titles.get(sku) or sku), float(n)) for sku, n in best]
    stages = [(t(lang, f"reports.stage.{name}"), n) for name, n in f.funnel.stages()]
    return ChartData(t(lang, "reports.chart.daily", currency=currency), currency, daily,
                     t(lang, "reports.chart.funnel"), stages, t(lang, "reports.chart.top"), top)


def _clip(text: str) -> str:
    return text if len(text) <= LABEL_WIDTH else text[:LABEL_WIDTH - 1] + "…"


def draw(data: ChartData) -> list[Screen]:
    """The charts that have something to show, each a screen with its PNG (runs in a worker thread)."""
    from handlers import charts  # noqa: PLC0415 - matplotlib (most of a second to load) only when a report draws

    out = []
    if data.currency and any(v for _, v in data.daily):
        out.append(Screen(data.daily_title, image=charts.daily_revenue(data.daily, title=data.daily_title,
                                                                       unit=data.currency).png))
    if any(n for _, n in data.funnel):
        out.append(Screen(data.funnel_title, image=charts.funnel(data.funnel, title=data.funnel_title).png))
    if data.top:
        out.append(Screen(data.top_title, image=charts.top_products(data.top, title=data.top_title).png))
    return out


async def charts_for(admin: AdminFlow, lang: str, f: Figures) -> tuple[list[Screen], bool]:
    """(the chart screens, whether drawing failed)."""
    shop = admin.shop
    titles = {p.sku: localized(p.title, lang, shop.default_language)
              for p in await shop.products(include_inactive=True)}
    try:
        return await asyncio.to_thread(draw, chart_data(admin.i18n, lang, f, titles)), False
    except Exception as exc:  # noqa: BLE001 - the figures still go out, with a note
        log.error("report charts not drawn: %s: %s", type(exc).__name__, exc)  # a missing font says which
        return [], True


# -- the commands -----------------------------------------------------------------------------------------------
async def command(admin: AdminFlow, ctx: AdminCtx, name: str, rest: str) -> list[Screen]:
    """/report or /export (handlers/admin.py hands both here)."""
    if name == EXPORT:
        return [await export_command(admin, ctx, rest)]
    return await report_command(admin, ctx, rest)


async def report_command(admin: AdminFlow, ctx: AdminCtx, rest: str) -> list[Screen]:
    """The figures of the period asked for (today when none), then its charts."""
    desk, lang = admin.shop.reports, ctx.language
    try:
        period = desk.period(rest.strip() or "today")
    except ReportsError as exc:
        await admin.service.record(ctx.merchant, "report", refused=exc.code.value, asked=rest[:64])
        return [errors.screen(admin.i18n, lang, exc)]
    figures = await desk.figures(period)
    await admin.service.record(ctx.merchant, "report", period=period.label)
    text = render(admin.i18n, lang, figures)
    images, failed = await charts_for(admin, lang, figures)
    if failed:
        text.footer = admin.i18n.t(lang, "reports.charts_failed")
    return [text, *images]


async def export_command(admin: AdminFlow, ctx: AdminCtx, rest: str) -> Screen:
    """The period's paid orders (today when none) as a CSV file, never a code."""
    desk, lang, t = admin.shop.reports, ctx.language, admin.i18n.t
    try:
        period = desk.period(rest.strip() or "today")
        export = await desk.export_orders(period, actor=ctx.merchant.key, channel=ctx.merchant.channel)
    except ReportsError as exc:
        await admin.service.record(ctx.merchant, "export", refused=exc.code.value, asked=rest[:64])
        return errors.screen(admin.i18n, lang, exc)
    return Screen(t(lang, "reports.export.title", period=period.label),
                  t(lang, "reports.export.body", rows=export.rows, period=period.label, zone=period.zone),
                  file=(export.name, export.data))
