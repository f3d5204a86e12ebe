"""Reports (owners only): a period's figures (core/reports/ ReportDesk: today, 7d, 30d or a from..to range in the
store's zone; a period that makes no sense is refused with why), the chat's charts as SVG (handlers/charts.py, drawn
in a worker thread, one at a time, cached a minute), and the period's orders as a CSV download (never a code; every
cell through core/csvfiles.py), audited as `export` with who, the period and the rows. A look at the figures is
recorded as the chat's /report is (`admin`, command `report`)."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from bots.web.kit import Pages, Req
from bots.web.pages.shown import refusal
from core.models import localized
from core.reports import Figures, Period, ReportsError
from handlers.reports import ChartData, chart_data

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


def _currency(f: Figures) -> str:
    """The currency the daily chart is drawn in (as handlers/reports.py chart_data picks it): the one that took the
    most, Stars only when nothing else sold."""
    money = [c for c in f.revenue if c != "XTR"] or list(f.revenue)
    return max(money, key=lambda c: (f.revenue[c], c)) if money else ""


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
    f = await req.web.figures(period)
    await req.web.admin.record(req.merchant, "report", period=period.label)
    low = {s.sku for s in f.stock if s.days_of_cover is not None and s.days_of_cover < LOW_COVER_DAYS}
    return req.render("reports.html", f=f, refused=None, asked=asked, quick=QUICK, top=f.top_by_revenue(TOP),
                      low=low, currency=_currency(f), pct=lambda x: f"{x:.0%}",
                      charts=[c for c in CHARTS if c != "funnel" or any(n for _, n in f.funnel.stages())])


# -- charts ---------------------------------------------------------------------------------------------------
_charts: dict[tuple[str, ...], tuple[float, str]] = {}
_chart_lock = asyncio.Lock()
CHARTS = ("daily", "funnel", "top")


def _draw(charts: Any, name: str, data: ChartData) -> Any:
    """One chart of the chat's three (handlers/reports.py chart_data), drawn by handlers/charts.py: runs in a
    worker thread."""
    if name == "daily":
        return charts.daily_revenue(data.daily, title=data.daily_title, unit=data.currency)
    if name == "funnel":
        return charts.funnel(data.funnel, title=data.funnel_title)
    return charts.top_products(data.top, title=data.top_title)


@pages.get("/reports/charts/{name}.svg", owner=True)
async def chart(req: Req) -> web.StreamResponse:
    """One chart of the period as SVG, the chat's chart (the figures read again: never older than a minute)."""
    from handlers import charts  # noqa: PLC0415 - matplotlib loads only when a chart is asked for

    name = req.request.match_info["name"]
    if name not in CHARTS:
        raise web.HTTPNotFound()
    try:
        period = _period(req)
    except ReportsError as exc:
        return web.Response(status=400, text=exc.code.value)
    key = (req.lang, name, period.label, period.zone)
    hit = _charts.get(key)
    if hit is None or time.monotonic() - hit[0] > CHART_TTL:
        shop = req.web.shop
        titles = {p.sku: localized(p.title, req.lang, shop.default_language)
                  for p in await shop.products(include_inactive=True)}
        data = chart_data(req.web.i18n, req.lang, await req.web.figures(period), titles)
        async with _chart_lock:  # one drawing at a time (matplotlib), off the event loop
            try:
                drawn = await asyncio.get_running_loop().run_in_executor(None, _draw, charts, name, data)
            except charts.ChartFontMissing as exc:
                return web.Response(status=503, text=str(exc))
        hit = _charts[key] = (time.monotonic(), drawn.svg)
        while len(_charts) > 64:
            _charts.pop(next(iter(_charts)))
    return web.Response(text=hit[1], content_type="image/svg+xml")


# -- the orders as CSV --------------------------------------------------------------------------------------------
@pages.get("/reports/orders.csv", owner=True)
async def orders_csv(req: Req) -> web.StreamResponse:
    """The period's paid orders as a CSV file (the chat's /export): never a code, formulas neutralised; audited
    as `export` (who, the period, the rows). A bad period, or one with too many orders, is refused on the page."""
    m = req.merchant
    try:
        period = _period(req)
        export = await req.web.shop.reports.export_orders(period, actor=m.key, channel=m.channel)
    except ReportsError as exc:
        await req.web.admin.record(m, "export", refused=exc.code.value,
                                   asked=str(req.request.query_string)[:64])
        asked = {k: req.request.query.get(k, "")[:40] for k in ("period", "from", "to")}
        return req.render("reports.html", status=400, f=None, refused=refusal(req, exc), asked=asked, quick=QUICK)
    return web.Response(body=export.data, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{export.name}"'})
