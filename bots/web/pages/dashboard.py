"""The dashboard: today's figures (owners see money), stock alerts, the outbox backlog, failing jobs and suppliers;
and the revenue chart (SVG, the chat's chart drawn by handlers/charts.py, cached a minute)."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from aiohttp import web

from bots.web.kit import Pages, Req
from storage.jobs import SqlJobStore

pages = Pages()
CHART_TTL = 60.0
SHOWN = 99  # open tickets and reviews are counted up to this ("99+")


@pages.get("/")
async def dashboard(req: Req) -> web.StreamResponse:
    return req.render("dashboard.html", **await req.web.glance.get(lambda: _glance(req)))


async def _glance(req: Req) -> dict[str, Any]:
    """What the dashboard shows, the same for every merchant (the page hides money from staff)."""
    w = req.web
    shop = w.shop
    figures = await w.figures(shop.reports.period("today"))
    low = w.settings.store.low_stock_threshold
    stock = [s for s in await shop.stock() if s.available <= low]
    jobs = SqlJobStore(w.app.db)
    now = shop.clock.now()
    backlog = await jobs.failures_between(now - timedelta(days=1), now)
    records = await jobs.records()
    failed_jobs = sorted(name for name, r in records.items() if r.get("ok") is False)
    suppliers = await w.health.failing()
    problems = await _open_work(req)
    return {"figures": figures, "stock": stock, "low": low, "backlog": backlog, "failed_jobs": failed_jobs,
            "suppliers": suppliers, "problems": problems}


async def _open_work(req: Req) -> dict[str, int]:
    """Open tickets and orders waiting for a merchant's review (counts)."""
    async with req.web.shop.uow() as uow:
        tickets = len(await uow.tickets.open_list(SHOWN + 1, 0))
    reviews = len(await req.web.shop.risk.review_queue(SHOWN + 1))
    return {"tickets": tickets, "reviews": reviews}


_charts: dict[tuple[str, str], tuple[float, str]] = {}
_chart_lock = asyncio.Lock()


@pages.get("/charts/revenue.svg", owner=True)
async def revenue_chart(req: Req) -> web.StreamResponse:
    """The last 7 days' revenue in the store's first currency (SVG)."""
    from handlers import charts  # noqa: PLC0415 - matplotlib loads only when a chart is asked for

    shop = req.web.shop
    figures = await req.web.figures(shop.reports.period("7d"))
    currency = shop.currency or next(iter(sorted(figures.revenue)), "")
    key = (req.lang, f"{figures.period.start:%Y%m%d}:{currency}:{figures.revenue.get(currency, 0)}")
    hit = _charts.get(key)
    if hit is None or time.monotonic() - hit[0] > CHART_TTL:
        days = [(d, per.get(currency, 0) / 100) for d, per in figures.daily]
        async with _chart_lock:  # one drawing at a time (matplotlib), off the event loop
            chart = await asyncio.get_running_loop().run_in_executor(
                None, lambda: charts.daily_revenue(days, title=req.t("console.dashboard.chart"), unit=currency))
        hit = _charts[key] = (time.monotonic(), chart.svg)
        while len(_charts) > 32:
            _charts.pop(next(iter(_charts)))
    return web.Response(text=hit[1], content_type="image/svg+xml")
