"""Which library runs the Telegram storefront: `telegram.library` picks aiogram (aiogram_bot.py) or
python-telegram-bot (ptb_bot.py), and only the chosen one is imported (aiogram alone takes seconds to import).

    runtime = app.add_telegram()               # build_telegram, then its notifier, Stars gateway and alerts
                                               # registered by the composition root (app/bootstrap.py)
    await runtime.start()                      # polling in the background (or nothing, in webhook mode)
    await runtime.feed_webhook(update_dict)    # webhook mode: one update from Telegram
    await runtime.set_face()                   # `run.py telegram setup` (start does it in the background)
    await runtime.stop()

Either runtime builds the library-neutral storefront with bots/telegram/wiring.py `storefront`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from core.shop import Shop

if TYPE_CHECKING:
    from bots.telegram.common import TelegramFrontend
    from bots.telegram.face import Face


class TelegramRuntime(Protocol):
    frontend: TelegramFrontend

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def feed_webhook(self, update: dict[str, Any]) -> None: ...
    async def set_webhook(self, url: str, secret: str) -> None: ...
    async def set_face(self) -> Face:
        """The bot's commands and descriptions set now (bots/telegram/face.py); Telegram's refusal is raised."""


def build_telegram(settings: Any, shop: Shop, *, concurrent_updates: bool = True) -> TelegramRuntime:
    if settings.telegram.library == "aiogram":
        from bots.telegram.aiogram_bot import AiogramRuntime  # noqa: PLC0415 - only the chosen library loads

        return AiogramRuntime(settings, shop, concurrent_updates=concurrent_updates)
    from bots.telegram.ptb_bot import PtbRuntime  # noqa: PLC0415 - only the chosen library loads

    return PtbRuntime(settings, shop, concurrent_updates=concurrent_updates)
