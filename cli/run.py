"""`run.py` / `run.py run`: the store: the terminal demo when no channel is configured, else the chat storefronts
that are (Telegram, WeChat, or both) on one App and one HTTP server."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from app import App
from app.bootstrap import start_scheduler, stop_scheduler
from app.process import settle_heap
from bots.b2b_api import mount_api
from bots.console import ConsoleNotifier, run_console
from bots.http import HttpServer, webhook_path
from bots.miniapp import mount_miniapp
from bots.ops import mount_ops
from bots.telegram.common import bot_id
from bots.web import mount_console
from cli.common import Voice
from config.settings import Settings
from core.demo import seed_demo_codes
from handlers.customer import CustomerFlow
from locales import Translator
from suppliers import mount_callbacks

log = logging.getLogger("store")


def add_parser(sub: Any, say: Voice) -> None:
    sub.add_parser("run", help=say.t("cli.help.run"))


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    if not settings.demo_mode():
        return await serve(settings)
    return await demo(settings)


async def demo(settings: Settings) -> int:
    """The terminal demo: the customer flow as a numbered-option chat, demo payments, sample codes."""
    i18n = Translator(settings.store.languages, settings.store.default_language)
    notifier = ConsoleNotifier()
    app = await App.open(settings, notifiers={"console": notifier})
    try:
        await seed_demo_codes(app.db.uow, app.vault, app.clock, await app.shop.products())
        flow = CustomerFlow(app.shop, i18n, shop_name=settings.store.name, support=settings.store.support,
                            demo_payments=True, terms=settings.store.terms)
        notifier.flow = flow
        await app.shop.start()
        scheduler, runner = start_scheduler(app)
        try:
            await run_console(flow, notifier, i18n)
        finally:
            await stop_scheduler(scheduler, runner)
    finally:
        await app.close()
    return 0


async def serve(settings: Settings) -> int:
    """The chat storefronts that are configured (Telegram, WeChat, or both) on one App and one HTTP server."""
    tg = settings.telegram
    async with await App.open(settings) as app:
        server = HttpServer(settings.server.host, settings.server.port)
        runtime = wechat = None
        if tg.enabled:
            runtime = app.add_telegram()
        if settings.wechat.enabled:
            wechat = app.add_wechat(server)  # /wechat (and /wechat/pay/notify) on the server
            from bots.wechat.h5 import mount_h5  # noqa: PLC0415 - wechatpy loads only with a WeChat channel
        await app.shop.start()
        if wechat is not None:
            await wechat.start()
        scheduler, runner = start_scheduler(app, wechat.gateway if wechat is not None else None,
                                            runtime.port if runtime is not None else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            webhook = runtime is not None and tg.mode == "webhook"
            if webhook:
                secret = tg.webhook.secret.get_secret_value()
                server.add_telegram(runtime, webhook_path(tg.webhook.url), secret, app.shop.shared,
                                    bot=bot_id(settings))
            mount_ops(server, app, app.metrics)  # /healthz, /readyz, /metrics whenever the server runs
            callbacks = mount_callbacks(server, app.shop, settings)  # suppliers' top-up results, when any
            if settings.server.api:  # the B2B API for resellers under /api/v1
                mount_api(server, app.resellers, settings, app.shop.shared)
            if settings.console.enabled:  # the merchant's web console under /console/
                mount_console(server, app)
                log.info("web console at %s/console/", settings.server.base_url())
            miniapp = tg.enabled and tg.webapp.enabled and bool(settings.server.public_url)
            h5 = wechat is not None and settings.wechat.h5.enabled and bool(settings.server.public_url)
            hosts = [mount_h5(server, app, wechat)] if h5 else []  # the WeChat H5 shop at /h5/ (bots/wechat/h5.py)
            if miniapp or h5:  # the Mini App's API under /app/api/ (its invoices issued by the running bot)
                mount_miniapp(server, app, runtime if miniapp else None, hosts=hosts)
                log.info("Mini App API at %s/app/api/", settings.server.base_url())
            if (webhook or wechat is not None or callbacks or settings.server.api or settings.console.enabled
                    or miniapp or h5 or settings.server.ops):
                await server.start()
                log.info("health and metrics at http://%s:%s/healthz, /readyz, /metrics (loopback or "
                         "server.metrics_token)", settings.server.host, server.port)
            if runtime is not None:
                if webhook:
                    await runtime.set_webhook(tg.webhook.url, tg.webhook.secret.get_secret_value())
                else:
                    await runtime.start()
            if wechat is not None:
                log.info("WeChat callback at http://%s:%s/wechat", settings.server.host, server.port)
            settle_heap()  # start-up's objects out of the garbage collector's way (app/process.py)
            await stop.wait()
        finally:
            await stop_scheduler(scheduler, runner)
            await server.stop()
            if runtime is not None:
                await runtime.stop()
            if wechat is not None:
                await wechat.stop()
    return 0
