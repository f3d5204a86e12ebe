#!/usr/bin/env python3
"""Mount the card store in a python-telegram-bot (PTB 22) bot you already run.

    TELEGRAM_TOKEN=123:ABC python examples/mount_ptb.py [config.yaml]

Your own handlers keep working; the store answers everything they leave alone (/start, its buttons,
invoices, pre-checkout queries and payments). Add your handlers first: in a group, the first match wins.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

# ruff: noqa: E402 - run as a script from anywhere: the project root goes on sys.path before the store's imports
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from app import App
from bots.telegram.ptb_bot import PtbPort, log_handler_error, store_handlers
from bots.telegram.wiring import storefront
from config.settings import Settings, load_settings
from jobs.scheduler import build_scheduler


# -- the merchant's own bot ---------------------------------------------------------------------
async def hello(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text("Hello from my own bot!")


# -- mounting the store -------------------------------------------------------------------------
def build(settings: Settings, app: App) -> Application:
    """Your Application with the store mounted next to your own handlers."""
    tg = settings.telegram
    base = tg.api_base.rstrip("/")  # https://api.telegram.org unless you use a local Bot API server
    application = (ApplicationBuilder().token(tg.token.get_secret_value())
                   .base_url(f"{base}/bot").base_file_url(f"{base}/file/bot").build())
    frontend = storefront(settings, app.shop, PtbPort(application.bot))
    app.plug(frontend.parts)                                    # deliveries and refunds go through this bot
    application.add_handler(CommandHandler("hello", hello))     # yours first: the first match wins
    application.add_handlers(store_handlers(frontend))          # the store takes everything else
    application.add_error_handler(log_handler_error)            # PTB would otherwise swallow errors
    return application


async def main(config: str) -> int:
    settings = load_settings(config)
    if not settings.telegram.enabled:
        print("set telegram.token (TELEGRAM_TOKEN) in the config first", file=sys.stderr)
        return 2
    async with await App.open(settings) as app:
        application = build(settings, app)
        await app.shop.start()              # the outbox: deliveries and refunds go out from here
        scheduler = build_scheduler(app.shop)  # lapsed holds are released, failed sends retried
        scheduler.start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            async with application:         # initialize() ... shutdown()
                await application.start()
                assert application.updater is not None
                await application.updater.start_polling()
                try:
                    await stop.wait()       # Ctrl+C
                finally:
                    await application.updater.stop()
                    await application.stop()
        finally:
            scheduler.shutdown(wait=False)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "config.yaml"))))
