"""Builds the Telegram storefront for the configured library on an open App.

    runtime = build_telegram(settings, app)    # registers the notifier and the Stars gateway on app.shop
    await runtime.start()                      # polling in the background (or nothing, in webhook mode)
    await runtime.feed_webhook(update_dict)    # webhook mode: one update from Telegram
    await runtime.stop()
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from bots.telegram.common import CHANNEL, PROVIDER, StarsGateway, TelegramFrontend, TelegramNotifier, TelegramPort
from core.flood import gate_from
from handlers.customer import CustomerFlow
from locales import Translator


class TelegramRuntime(Protocol):
    frontend: TelegramFrontend

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def feed_webhook(self, update: dict[str, Any]) -> None: ...
    async def set_webhook(self, url: str, secret: str) -> None: ...


def storefront(settings: Any, app: Any, port: TelegramPort) -> TelegramFrontend:
    """The library-neutral part: flow, frontend, and the notifier and gateway the outbox uses."""
    from bots.telegram.admin import TelegramAdmin
    from bots.telegram.limits import limited

    port = limited(port, settings.telegram.limits)
    i18n = Translator(settings.store.languages, settings.store.default_language)
    flow = CustomerFlow(app.shop, i18n, shop_name=settings.store.name, support=settings.store.support,
                        show_stars=True, numbered=False, ask_phone=True)
    minutes = settings.telegram.delete_code_after
    cards = None
    if getattr(app.shop, "card_faces", None) is not None:  # resellers' card faces (run.py attaches the desk)
        from bots.cardface import paint_card
        from handlers.cardface import CardFaceScreens

        cards = CardFaceScreens(app.shop.card_faces, paint_card, i18n, settings.store.default_language)
    notifier = TelegramNotifier(flow, port, timedelta(minutes=minutes) if minutes else None, cards)
    app.shop.notifiers[CHANNEL] = notifier
    app.shop.gateways[PROVIDER] = StarsGateway(port)
    admin = TelegramAdmin(app.shop, port, i18n, admins=list(settings.telegram.admins))
    if settings.telegram.admins and getattr(app, "alerts", None) is not None:  # merchant alerts with buttons
        from bots.telegram.alerts import TelegramAlerts

        app.alerts.add(TelegramAlerts(port, i18n, app.shop, admins=settings.telegram.admins))
    groups = None
    desk = getattr(app.shop, "groups", None)  # reseller group chats (run.py attaches them)
    if desk is not None:
        from bots.telegram.groups import GroupDeliveryNotifier, TelegramGroups

        groups = TelegramGroups(desk, port, i18n, admins=list(settings.telegram.admins))
        app.shop.notifiers[desk.deliver_channel] = GroupDeliveryNotifier(groups, notifier)
    return TelegramFrontend(app.shop, flow, port, i18n, admin, groups, flood=gate_from(settings.risk),
                            exempt=frozenset(settings.telegram.admins))


def build_telegram(settings: Any, app: Any, *, concurrent_updates: bool = True) -> TelegramRuntime:
    tg = settings.telegram
    if tg.library == "aiogram":
        from bots.telegram.aiogram_bot import AiogramRuntime

        return AiogramRuntime(settings, app, concurrent_updates=concurrent_updates)
    from bots.telegram.ptb_bot import PtbRuntime  # noqa: PLC0415 - only loaded when chosen

    return PtbRuntime(settings, app, concurrent_updates=concurrent_updates)
