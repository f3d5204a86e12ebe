"""Merchant commands in the Telegram chat (being built: /stock, /import, /orders, /order, /refund, /product)."""
from __future__ import annotations

from core.shop import Shop
from bots.telegram.common import Document, TelegramPort
from locales import Translator


class TelegramAdmin:
    def __init__(self, shop: Shop, port: TelegramPort, i18n: Translator, *, admins: list[int]) -> None:
        self.shop = shop
        self.port = port
        self.i18n = i18n
        self.admins = set(admins)

    async def handle(self, user_id: int, chat_id: int, text: str, document: Document | None,
                     lang_hint: str | None) -> bool:
        return False
