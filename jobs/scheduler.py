"""The scheduler. Jobs have stable ids and only call core: the store's own jobs are jobs/store.py's, the ones
that need the running store's channels (outbox, WeChat Pay, Stars) are added here.

With a jobs.lease.JobRunner (the composition root, app/, always passes one), every job runs through
`runner.tick(name)`: it does its work only in the process holding the scheduler lease, once per tick. Interval
jobs fire at fixed instants (multiples of the interval since jobs.lease.EPOCH) so that every process's tick for a
job is the same tick; a heartbeat renews the lease in between. Without a runner (one process embedding the store,
see examples/) the three original jobs run unleased, as before.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.payments import StarLedger
from core.ports import PaymentReconciler
from core.shop import Shop
from jobs.lease import EPOCH, JobRunner

log = logging.getLogger(__name__)

DEFAULT_EVERY = {"dispatch-outbox": 30.0, "reconcile-wechat-pay": 60.0, "reconcile-stars": 60.0}


async def expire_holds(shop: Shop) -> None:
    """Release the stock of unpaid orders whose hold lapsed."""
    lapsed = await shop.expire_holds()
    if lapsed:
        log.info("released %d lapsed holds", len(lapsed))


async def dispatch_outbox(shop: Shop) -> None:
    """Send what is due in the outbox (retries after failures; the dispatcher also runs on every commit)."""
    await shop.dispatcher.dispatch_once()


async def reconcile_wechat_pay(gateway: PaymentReconciler) -> None:
    """Ask WeChat Pay about unpaid orders, so a payment whose notice never came is not lost."""
    found = await gateway.reconcile()
    if found:
        log.info("recorded %d WeChat Pay payments found by orderquery", found)


def add_channel_jobs(runner: JobRunner, shop: Shop, wechat_pay: PaymentReconciler | None = None,
                     every: Mapping[str, float] | None = None, stars: StarLedger | None = None) -> None:
    """The jobs that need the running store's channels (not runnable from `run.py jobs run`). `stars`: the
    Telegram bot's Star transactions (its port), for the Stars reconciliation."""
    every = {**DEFAULT_EVERY, **(every or {})}
    if stars is not None:
        async def reconcile_stars() -> str:
            return f"{await shop.payments.reconcile_stars(stars)} unrecorded Stars payments found"

        runner.add("reconcile-stars", reconcile_stars, every=timedelta(seconds=every["reconcile-stars"]),
                   manual=False)

    async def outbox() -> str:
        return f"{await shop.dispatcher.dispatch_once()} outbox rows attempted"

    runner.add("dispatch-outbox", outbox, every=timedelta(seconds=every["dispatch-outbox"]), manual=False)
    if wechat_pay is not None:
        async def reconcile() -> str:
            return f"{await wechat_pay.reconcile()} payments found by orderquery"

        runner.add("reconcile-wechat-pay", reconcile, every=timedelta(seconds=every["reconcile-wechat-pay"]),
                   manual=False)


def build_scheduler(shop: Shop, wechat_pay: PaymentReconciler | None = None, *, runner: JobRunner | None = None,
                    every: Mapping[str, float] | None = None, stars: StarLedger | None = None) -> AsyncIOScheduler:
    """The store's jobs; wechat_pay (the WeChat Pay gateway, bots/wechat/pay.py) adds the WeChat Pay reconciliation."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    if runner is None:
        scheduler.add_job(expire_holds, "interval", seconds=30, args=[shop], id="expire-holds",
                          replace_existing=True, max_instances=1, coalesce=True)
        scheduler.add_job(dispatch_outbox, "interval", seconds=30, args=[shop], id="dispatch-outbox",
                          replace_existing=True, max_instances=1, coalesce=True)
        if wechat_pay is not None:
            scheduler.add_job(reconcile_wechat_pay, "interval", seconds=60, args=[wechat_pay],
                              id="reconcile-wechat-pay", replace_existing=True, max_instances=1, coalesce=True)
        return scheduler
    add_channel_jobs(runner, shop, wechat_pay, every, stars)
    for name, spec in runner.jobs.items():
        if spec.every is not None:
            trigger: Any = IntervalTrigger(seconds=spec.every.total_seconds(), start_date=EPOCH, timezone="UTC")
            grace = max(1, int(spec.every.total_seconds() / 2))
        else:
            trigger = CronTrigger(hour=spec.daily_at.hour, minute=spec.daily_at.minute,  # type: ignore[union-attr]
                                  timezone=runner.zone)
            grace = 3600  # a store down at the summary's time sends it when it is back within the hour
        scheduler.add_job(runner.tick, trigger, args=[name], id=name, replace_existing=True, max_instances=1,
                          coalesce=True, misfire_grace_time=grace)
    beat = max(0.5, runner.lease.total_seconds() / 3)
    scheduler.add_job(runner.heartbeat, IntervalTrigger(seconds=beat, timezone="UTC"), id="scheduler-lease",
                      replace_existing=True, max_instances=1, coalesce=True)
    return scheduler
