"""Broadcasts in the chat (core/broadcast.py): the merchant's /broadcast and the buyers' /stop_news and /news.

    /broadcast [lang=zh_CN] [channel=telegram|wechat] [bought=SKU] [level=N] TEXT   preview: recipients per
                                                                  channel, Send / Cancel (buttons or typed commands)
    /broadcast send ID | cancel ID | status ID

After "send" a progress message follows the outbox (Telegram edits it as messages go out) and ends with the summary
(sent, skipped, failed); a channel without edits (WeChat) gets the summary as a notice when the last message went
out. The watcher lives in the process: after a restart the messages still go out, and `/broadcast status ID`
tells how far they got.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING

from core.background import Background
from core.broadcast import Broadcast, BroadcastDesk, BroadcastError, Progress, parse
from core.models import Customer, OutboxItem
from handlers.merchant import AdminCtx, Usage
from handlers.screen import Action, Screen

if TYPE_CHECKING:
    from core.shop import Shop
    from handlers.admin import AdminFlow, ProgressSink
    from handlers.customer import CustomerFlow

log = logging.getLogger(__name__)

COMMAND = "/broadcast"
BUYER_COMMANDS = ("/stop_news", "/news")
WATCH_IDLE = 900.0  # seconds without a message going out before the watcher gives up (status still answers)


_DESKS: weakref.WeakKeyDictionary[Shop, BroadcastDesk] = weakref.WeakKeyDictionary()


def desk_of(shop: Shop) -> BroadcastDesk:
    """The shop's one broadcast desk (the merchant's commands, the buyers' opt-outs and WeChat's window share it)."""
    desk = _DESKS.get(shop)
    if desk is None:
        desk = _DESKS[shop] = BroadcastDesk(
            shop.uow, shop.clock, shop, default_language=shop.default_language, wake=shop.dispatcher.wake,
            templates=lambda: shop.templates_ready("wechat"))
    return desk


async def news(flow: CustomerFlow, cust: Customer, command: str) -> Screen:
    """/stop_news: no more broadcasts; /news: broadcasts again."""
    wanted = command == "/news"
    await desk_of(flow.shop).set_news(cust.buyer, wanted)
    lang = cust.language or flow.shop.default_language
    return Screen(flow.i18n.t(lang, "broadcast.news.on" if wanted else "broadcast.news.off"))


WATCHERS = Background(log, "a broadcast's progress")  # one watcher per confirmed broadcast


async def command(flow: AdminFlow, ctx: AdminCtx, rest: str, progress: ProgressSink | None) -> list[Screen]:
    desk = desk_of(flow.shop)
    lang = ctx.language
    key = ctx.merchant.key
    args = rest.split()
    try:
        if len(args) == 2 and args[0] in ("send", "cancel", "status") and args[1].isascii() and args[1].isdigit():
            bid = int(args[1][:9])
            if args[0] == "cancel":
                b = await desk.cancel(key, bid)
                await flow.service.record(ctx.merchant, "broadcast", id=str(bid), cancelled="1")
                return [Screen(flow.i18n.t(lang, "broadcast.cancelled", id=b.id))]
            if args[0] == "status":
                return [_progress_screen(flow, lang, bid, await desk.progress(bid), final=False)]
            b = await desk.confirm(key, bid)
            await flow.service.record(ctx.merchant, "broadcast", id=str(bid), recipients=str(b.total))
            if progress is not None:
                await progress(_progress_screen(flow, lang, bid, Progress(b.total, 0, 0), final=False))
            WATCHERS.spawn(_watch(flow, ctx, b, progress))
            return [] if progress is not None else [Screen(flow.i18n.t(lang, "broadcast.queued", id=bid,
                                                                      total=b.total))]
        if not rest:
            raise Usage("broadcast")
        segment, text = parse(rest)
        b = await desk.preview(key, segment, text)
        return [_preview(flow, lang, b)]
    except BroadcastError as exc:
        await flow.service.record(ctx.merchant, "broadcast", refused=exc.reason)
        if exc.reason in ("empty", "filter"):
            return [Screen(flow.i18n.t(lang, "admin.usage.title"),
                           flow.i18n.t(lang, f"broadcast.error.{exc.reason}", **exc.params) + "\n\n"
                           + flow.i18n.t(lang, "admin.usage.broadcast"), error="usage")]
        return [Screen(flow.i18n.t(lang, f"broadcast.error.{exc.reason}", **exc.params), error=exc.reason)]


def _preview(flow: AdminFlow, lang: str, b: Broadcast) -> Screen:
    t = flow.i18n.t
    seg = ", ".join(f"{k}={v}" for k, v in b.segment.as_dict().items()) or t(lang, "broadcast.everyone")
    body = "\n".join([t(lang, "broadcast.preview.segment", segment=seg),
                      t(lang, "broadcast.preview.counts", telegram=b.counts.get("telegram", 0),
                        wechat=b.counts.get("wechat", 0), total=b.total),
                      *([t(lang, "broadcast.preview.templates", n=b.counts["wechat_template"])]
                        if b.counts.get("wechat_template") else []),
                      t(lang, "broadcast.preview.window_templates" if desk_of(flow.shop).templates()
                        else "broadcast.preview.window"), "", b.text])
    actions = [[Action(f"{COMMAND} send {b.id}", t(lang, "broadcast.send")),
                Action(f"{COMMAND} cancel {b.id}", t(lang, "broadcast.cancel"))]] if b.total else []
    return Screen(t(lang, "broadcast.preview.title", id=b.id), body, actions=actions,
                  error=None if b.total else "no_recipients")


def _progress_screen(flow: AdminFlow, lang: str, bid: int, p: Progress, *, final: bool) -> Screen:
    t = flow.i18n.t
    key = "broadcast.summary" if final else "broadcast.progress"
    return Screen(t(lang, key, id=bid, sent=p.sent, failed=p.failed, total=p.total,
                    skipped=max(p.total - p.sent - p.failed, 0)))


async def _watch(flow: AdminFlow, ctx: AdminCtx, b: Broadcast, progress: ProgressSink | None) -> None:
    desk = desk_of(flow.shop)
    lang = ctx.language
    last, idle = -1, 0.0
    p = Progress(b.total, 0, 0)
    every = max(flow.progress_interval, 0.05)  # the merchant's progress edits, as /import's
    while not p.done and idle < WATCH_IDLE:
        await asyncio.sleep(every)
        p = await desk.progress(b.id)
        moved = p.sent + p.failed
        idle = 0.0 if moved != last else idle + every
        if progress is not None and moved != last and not p.done:
            try:
                await progress(_progress_screen(flow, lang, b.id, p, final=False))
            except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the messages go out regardless
                log.warning("broadcast progress update failed: %s", type(exc).__name__)
        last = moved
    final = _progress_screen(flow, lang, b.id, p, final=True)
    if progress is not None:
        try:
            await progress(final)
            return
        except Exception as exc:  # noqa: BLE001 - fall back to a notice
            log.warning("broadcast summary edit failed: %s", type(exc).__name__)
    async with flow.shop.uow(write=True) as uow:  # a channel without edits: the summary as a notice
        await uow.outbox.add_many([OutboxItem(None, "notify", ctx.merchant.channel, ctx.merchant.external_id,
                                              None, {"key": "broadcast.summary", "language": lang, "params": {
                                                  "id": b.id, "sent": p.sent, "failed": p.failed, "total": p.total,
                                                  "skipped": max(p.total - p.sent - p.failed, 0)}})])
        await uow.commit()
    flow.shop.dispatcher.wake()
