"""Merchant alerts in Telegram (core.alerts.AdminAlerts): a message to each user id in `telegram.admins`,
in the merchant's language (their stored language, else the store's default).

    alerts = TelegramAlerts(runtime.frontend.port, runtime.frontend.i18n, app.shop, admins=tg.admins)
    await alerts.alert("alert.low_stock", {"sku": "STEAM-50", "title": "Steam", "n": 3})

A merchant who never wrote to the bot cannot be written to (Telegram's rule); that send fails, is logged, and
the other merchants still get the alert.
"""
from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

from bots.telegram.common import TEXT_LIMIT, Button, OutMessage, TelegramPort, buyer_of
from core.alerts import Commands
from core.shop import Shop
from locales import Translator

log = logging.getLogger(__name__)


class TelegramAlerts:
    def __init__(self, port: TelegramPort, i18n: Translator, shop: Shop, *, admins: Sequence[int]) -> None:
        self.port = port
        self.i18n = i18n
        self.shop = shop
        self.admins = list(admins)

    async def alert(self, key: str, params: dict[str, Any], commands: Commands = ()) -> None:
        """Offered commands become buttons whose callback data is the command (TelegramAdmin runs it)."""
        failed = 0
        for admin in self.admins:
            try:
                cust = await self.shop.customer(buyer_of(admin))
                lang = cust.language or self.shop.default_language
                text = "🔔 " + html.escape(self.i18n.t(lang, key, **params))
                buttons = [[Button(self.i18n.t(lang, label), callback_data=command[:64])]
                           for label, command in commands]
                await self.port.send(admin, OutMessage(text[:TEXT_LIMIT], buttons))
            except Exception as exc:  # noqa: BLE001 - best effort per merchant
                failed += 1
                log.warning("alert %s to Telegram admin %s not sent: %s", key, admin, type(exc).__name__)
        if failed and failed == len(self.admins):
            raise RuntimeError(f"alert {key} reached no Telegram admin")
