#!/usr/bin/env python3
"""Mount the card store in an aiogram 3 bot you already run.

    TELEGRAM_TOKEN=123:ABC python examples/mount_aiogram.py [config.yaml]

Your own handlers keep working; the store answers everything they leave alone (/start, its buttons,
invoices, pre-checkout queries and payments). Include your routers first: aiogram uses the first match.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

# ruff: noqa: E402 - run as a script from anywhere: the project root goes on sys.path before the store's imports
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message

from app import App
from bots.telegram.aiogram_bot import AiogramPort, make_bot, store_router
from bots.telegram.wiring import storefront
from config.settings import Settings, load_settings
from jobs.scheduler import build_scheduler

# -- the merchant's own bot ---------------------------------------------------------------------
my_router = Router(name="my-bot")


@my_router.message(Command("hello"))
async def hello(message: Message) -> None:
    await message.answer("Hello from my own bot!")


# -- mounting the store -------------------------------------------------------------------------
def build(settings: Settings, app: App) -> tuple[Bot, Dispatcher]:
    """Your Bot and Dispatcher with the store mounted next to your own router."""
    tg = settings.telegram
    bot = make_bot(tg.token.get_secret_value(), tg.api_base)  # or your Bot(token); api_base is for test servers
    frontend = storefront(settings, app.shop, AiogramPort(bot))
    app.plug(frontend.parts)                    # the shop delivers and refunds Stars through this bot
    dp = Dispatcher()
    dp.include_router(my_router)                # yours first: the first matching handler wins
    dp.include_router(store_router(frontend))  # the store takes everything else
    return bot, dp


async def main(config: str) -> int:
    settings = load_settings(config)
    if not settings.telegram.enabled:
        print("set telegram.token (TELEGRAM_TOKEN) in the config first", file=sys.stderr)
        return 2
    async with await App.open(settings) as app:
        bot, dp = build(settings, app)
        await app.shop.start()              # the outbox: deliveries and refunds go out from here
        scheduler = build_scheduler(app.shop)  # lapsed holds are released, failed sends retried
        scheduler.start()
        try:
            await dp.start_polling(bot)     # Ctrl+C stops it and closes the bot session
        finally:
            scheduler.shutdown(wait=False)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "config.yaml"))))
