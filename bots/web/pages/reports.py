"""Reports (owners only): a period's figures (core/reports/ ReportDesk: today, 7d, 30d or a from..to range in the
store's zone; a period that makes no sense is refused with why), the chat's charts as SVG (handlers/charts.py, drawn
in a worker thread, one at a time, cached a minute), and the period's orders as a CSV download (never a code; every
cell through core/csvfiles.py), audited as `export` with who, the period and the rows. A look at the figures is
recorded as the chat's /report is (`admin`, command `report`)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from babel.numbers import get_currency_precision

from bots.web.kit import Pages, Req
from bots.web.pages.shown import refusal
from core.reports import Figures, Period, ReportsError

pages = Pages()
CHART_TTL = 60.0
TOP = 8  # products on the chart and in the table
LOW_COVER_DAYS = 7  # stock for fewer days than this is marked
QUICK = ("today", "7d", "30d")


def _period(req: Req) -> Period:
    """The period asked for: `?period=today|7d|30d|D..D`, or `?from=D&to=D` (one alone is that day); 7d by default."""
    q = req.request.query
    desk = req.web.shop.reports
    first, last = q.get("from", "").strip()[:10], q.get("to", "").strip()[:10]
    if first or last:
        return desk.between(first or last, last or first)
    return desk.period(q.get("period", "7d")[:40] or "7d")


def _currency(req: Req, f: Figures) -> str:
    """The currency the charts are drawn in: the store's, else the one that took the most (Stars last)."""
    money = [c for c in f.revenue if c != "XTR"] or list(f.revenue)
    return req.web.shop.currency or (max(money, key=lambda c: (f.revenue[c], c)) if money else "")


@pages.get("/reports", owner=True)
async def reports(req: Req) -> web.StreamResponse:
    """The figures of a period, its charts and the CSV download."""
    asked = {k: req.request.query.get(k, "")[:40] for k in ("period", "from", "to")}
    try:
        period = _period(req)
    except ReportsError as exc:
        await req.web.admin.record(req.merchant, "report", refused=exc.code.value,
                                   asked=" ".join(v for v in asked.values() if v)[:64])
        return req.render("reports.html", status=400, f=None, refused=refusal(req, exc), asked=asked, quick=QUICK)
    f = await req.web.shop.reports.figures(period)
    await req.web.admin.record(req.merchant, "report", period=period.label)
    low = {s.sku for s in f.stock if s.days_of_cover is not None and s.days_of_cover < LOW_COVER_DAYS}
    return req.render("reports.html", f=f, refused=None, asked=asked, quick=QUICK, top=f.top_by_revenue(TOP),
                      low=low, currency=_currency(req, f), pct=lambda x: f"{x:.0%}")


# -- charts ---------------------------------------------------------------------------------------------------
_charts: dict[tuple[str, ...], tuple[float, str]] = {}
_chart_lock = asyncio.Lock()


def _daily(req: Req, f: Figures) -> Callable[[Any], Any]:
    currency = _currency(req, f)
    unit = 1 if currency in ("XTR", "") else 10 ** get_currency_precision(currency)
    days = [(d, per.get(currency, 0) / unit) for d, per in f.daily]
    title = req.t("console.reports.chart.daily", currency=currency)
    return lambda charts: charts.daily_revenue(days, title=title, unit=currency)


def _top(req: Req, f: Figures) -> Callable[[Any], Any]:
    units: dict[str, int] = {}
    for p in f.products:
        units[p.sku] = units.get(p.sku, 0) + p.units
    best = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    title = req.t("console.reports.chart.top")
    return lambda charts: charts.top_products([(sku, float(n)) for sku, n in best], title=title)


CHARTS: dict[str, Callable[[Req, Figures], Callable[[Any], Any]]] = {"daily": _daily, "top": _top}


@pages.get("/reports/charts/{name}.svg", owner=True)
async def chart(req: Req) -> web.StreamResponse:
    """One chart of the period as SVG (the figures read again: a chart is never older than a minute)."""
    from handlers import charts  # noqa: PLC0415 - matplotlib loads only when a chart is asked for

    make = CHARTS.get(req.request.match_info["name"])
    if make is None:
        raise web.HTTPNotFound()
    try:
        period = _period(req)
    except ReportsError as exc:
        return web.Response(status=400, text=exc.code.value)
    key = (req.lang, req.request.match_info["name"], period.label, period.zone)
    hit = _charts.get(key)
    if hit is None or time.monotonic() - hit[0] > CHART_TTL:
        draw = make(req, await req.web.shop.reports.figures(period))
        async with _chart_lock:  # one drawing at a time (matplotlib), off the event loop
            try:
                drawn = await asyncio.get_running_loop().run_in_executor(None, draw, charts)
            except charts.ChartFontMissing as exc:
                return web.Response(status=503, text=str(exc))
        hit = _charts[key] = (time.monotonic(), drawn.svg)
        while len(_charts) > 64:
            _charts.pop(next(iter(_charts)))
    return web.Response(text=hit[1], content_type="image/svg+xml")
