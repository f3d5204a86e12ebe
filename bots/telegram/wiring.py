"""Builds the Telegram storefront for the configured library on an open App.

    runtime = app.add_telegram()               # build_telegram, then its notifier, Stars gateway and alerts
                                               # registered by the composition root (app/bootstrap.py)
    await runtime.start()                      # polling in the background (or nothing, in webhook mode)
    await runtime.feed_webhook(update_dict)    # webhook mode: one update from Telegram
    await runtime.stop()
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from bots.telegram.common import CHANNEL, StarsGateway, TelegramFrontend, TelegramNotifier, TelegramPort
from core.flood import gate_from
from core.ports import ChannelParts
from core.shop import Shop
from handlers.customer import CustomerFlow
from locales import Translator


class TelegramRuntime(Protocol):
    frontend: TelegramFrontend

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def feed_webhook(self, update: dict[str, Any]) -> None: ...
    async def set_webhook(self, url: str, secret: str) -> None: ...


def storefront(settings: Any, shop: Shop, port: TelegramPort) -> TelegramFrontend:
    """The library-neutral part: flow and frontend; `frontend.parts` holds the notifiers, the Stars gateway and
    the merchant alerts the outbox and the shop use, for the composition root to register (App.plug)."""
    from bots.telegram.admin import TelegramAdmin
    from bots.telegram.limits import limited

    port = limited(port, settings.telegram.limits)
    i18n = Translator(settings.store.languages, settings.store.default_language)
    flow = CustomerFlow(shop, i18n, shop_name=settings.store.name, support=settings.store.support,
                        show_stars=True, numbered=False, ask_phone=True)
    minutes = settings.telegram.delete_code_after
    cards = None
    if shop.card_faces is not None:  # resellers' card faces
        from bots.cardface import paint_card
        from handlers.cardface import CardFaceScreens

        cards = CardFaceScreens(shop.card_faces, paint_card, i18n, settings.store.default_language)
    notifier = TelegramNotifier(flow, port, timedelta(minutes=minutes) if minutes else None, cards)
    parts = ChannelParts({CHANNEL: notifier}, [StarsGateway(port)])
    admin = TelegramAdmin(shop, port, i18n, admins=list(settings.telegram.admins))
    if settings.telegram.admins:  # merchant alerts with buttons
        from bots.telegram.alerts import TelegramAlerts

        parts.alerts.append(TelegramAlerts(port, i18n, shop, admins=settings.telegram.admins))
    groups = None
    desk = shop.groups  # reseller group chats
    if desk is not None:
        from bots.telegram.groups import GroupDeliveryNotifier, TelegramGroups

        groups = TelegramGroups(desk, shop, port, i18n, admins=list(settings.telegram.admins))
        parts.notifiers[desk.deliver_channel] = GroupDeliveryNotifier(groups, notifier)
    frontend = TelegramFrontend(shop, flow, port, i18n, admin, groups, flood=gate_from(settings.risk),
                                exempt=frozenset(settings.telegram.admins))
    frontend.parts = parts
    return frontend


def build_telegram(settings: Any, shop: Shop, *, concurrent_updates: bool = True) -> TelegramRuntime:
    tg = settings.telegram
    if tg.library == "aiogram":
        from bots.telegram.aiogram_bot import AiogramRuntime

        return AiogramRuntime(settings, shop, concurrent_updates=concurrent_updates)
    from bots.telegram.ptb_bot import PtbRuntime  # noqa: PLC0415 - only loaded when chosen

    return PtbRuntime(settings, shop, concurrent_updates=concurrent_updates)
