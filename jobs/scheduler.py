"""The scheduler. Jobs have stable ids and only call the shop."""
from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.shop import Shop

log = logging.getLogger(__name__)


async def expire_holds(shop: Shop) -> None:
    """Release the stock of unpaid orders whose hold lapsed."""
    lapsed = await shop.expire_holds()
    if lapsed:
        log.info("released %d lapsed holds", len(lapsed))


async def dispatch_outbox(shop: Shop) -> None:
    """Send what is due in the outbox (retries after failures; the dispatcher also runs on every commit)."""
    await shop.dispatcher.dispatch_once()


async def reconcile_wechat_pay(shop: Shop, gateway: Any) -> None:
    """Ask WeChat Pay about unpaid orders, so a payment whose notice never came is not lost."""
    from bots.wechat.pay import reconcile

    found = await reconcile(shop, gateway)
    if found:
        log.info("recorded %d WeChat Pay payments found by orderquery", found)


def build_scheduler(shop: Shop, wechat_pay: Any = None) -> AsyncIOScheduler:
    """The store's jobs; wechat_pay (a bots.wechat.pay.WeChatPayGateway) adds the WeChat Pay reconciliation."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(expire_holds, "interval", seconds=30, args=[shop], id="expire-holds",
                      replace_existing=True, max_instances=1, coalesce=True)
    scheduler.add_job(dispatch_outbox, "interval", seconds=30, args=[shop], id="dispatch-outbox",
                      replace_existing=True, max_instances=1, coalesce=True)
    if wechat_pay is not None:
        scheduler.add_job(reconcile_wechat_pay, "interval", seconds=60, args=[shop, wechat_pay],
                          id="reconcile-wechat-pay", replace_existing=True, max_instances=1, coalesce=True)
    return scheduler
