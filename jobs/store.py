"""The store's own scheduled jobs: thin calls into core, each returning a one-line result for the job's record
(`run.py jobs` shows it).

What each job decides is core's: hold expiry core/shop.py (`Shop.expire_holds`), restock core/supply/restock.py,
stock alerts and expiring codes core/supply/stock.py, top-ups core/supply/desk.py and (stuck ones)
core/supply/health.py, the daily summary core/summary.py, B2B orders waiting for stock core/resellers/. Which
process runs them, at which tick: jobs/lease.py; the triggers and the jobs that need the channels:
jobs/scheduler.py. app/bootstrap.py builds the core parts and hands them in.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta

from core.shop import Shop
from core.summary import DailySummary
from core.supply import RestockDesk, StockWatch, SupplierHealth
from jobs.lease import JobRunner


class StoreJobs:
    """The jobs core owns; jobs/scheduler.py adds the channel ones (outbox, WeChat Pay, Stars)."""

    def __init__(self, shop: Shop, *, restocking: RestockDesk, stock: StockWatch, health: SupplierHealth,
                 summary: DailySummary) -> None:
        self.shop = shop
        self.restocking = restocking
        self.stock = stock
        self.health = health
        self.summary = summary

    def register(self, runner: JobRunner, every: Mapping[str, float], daily_summary_at: time | None) -> None:
        """Each job on the runner, at its interval in seconds (`every`, by job name) or daily."""
        runner.add("expire-holds", self.expire_holds, every=timedelta(seconds=every["expire-holds"]))
        runner.add("restock", self.restock, every=timedelta(seconds=every["restock"]))
        runner.add("stock-alerts", self.stock_alerts, every=timedelta(seconds=every["stock-alerts"]))
        runner.add("expire-codes", self.expire_codes, every=timedelta(seconds=every["expire-codes"]))
        runner.add("poll-topups", self.poll_topups, every=timedelta(seconds=every["poll-topups"]))
        if self.shop.group_buy is not None:
            runner.add("group-buy-expiry", self.group_buy_expiry,
                       every=timedelta(seconds=every.get("group-buy-expiry", 60)))
        if self.shop.resellers is not None:
            runner.add("b2b-waiting", self.b2b_waiting, every=timedelta(seconds=every.get("b2b-waiting", 60)))
        if daily_summary_at is not None:
            runner.add("daily-summary", self.daily_summary, daily_at=daily_summary_at)

    async def expire_holds(self) -> str:
        """Release the stock of unpaid orders whose hold lapsed, and tell each buyer the invoice lapsed."""
        lapsed = await self.shop.expire_holds(tell_buyers=True)
        return f"{len(lapsed)} holds released"

    async def restock(self) -> str:
        """Buy codes for pools below their safety line, within each product's daily budget."""
        return await self.restocking.restock()

    async def stock_alerts(self) -> str:
        """Low-stock and out-of-stock alerts, once per crossing."""
        return await self.stock.stock_alerts()

    async def expire_codes(self) -> str:
        """Withdraw codes that expire within the margin and tell the merchants."""
        return await self.stock.expire_codes()

    async def poll_topups(self) -> str:
        """Ask suppliers about pending top-ups (finished ones are delivered or refunded by the supply desk); the
        merchants hear of those pending too long."""
        finished = await self.shop.supply.poll_topups()
        stuck = await self.health.stuck_topups()
        return f"{finished} top-ups finished" + (f", {stuck} stuck (merchants told)" if stuck else "")

    async def group_buy_expiry(self) -> str:
        """Group-buys that did not fill in time: every paid member refunded, the unpaid holds cancelled, the codes
        back in the pool (core/group_buy.py)."""
        desk = self.shop.group_buy
        if desk is None:
            return "no group-buy"
        failed, refunded = await desk.expire()
        return f"{failed} groups failed, {refunded} members refunded"

    async def b2b_waiting(self) -> str:
        """B2B orders waiting for stock (partial policy `wait`): served oldest first, refunded after the wait."""
        desk = self.shop.resellers
        if desk is None:
            return "no resellers"
        served, refunded = await desk.fill_waiting()
        return f"{served} waiting orders delivered, {refunded} refunded"

    async def daily_summary(self, end: datetime | None = None) -> str:
        """Yesterday's sales, today's stock and the day's failures, to the merchants."""
        return await self.summary.daily_summary(end)
