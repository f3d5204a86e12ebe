"""The library-neutral Telegram storefront: the customer flow, the frontend and what the channel gives the shop
(the notifier, the Stars gateway, merchant alerts, reseller group chats). Each runtime (aiogram_bot.py,
ptb_bot.py; picked by runtime.py) calls `storefront` with its port; so can your own bot (examples/).

    frontend = storefront(settings, app.shop, port)
    app.plug(frontend.parts)                   # the composition root registers what the channel provides
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from bots.cardface import paint_card
from bots.telegram.admin import TelegramAdmin
from bots.telegram.alerts import TelegramAlerts
from bots.telegram.common import CHANNEL, StarsGateway, TelegramFrontend, TelegramNotifier, TelegramPort, bot_id
from bots.telegram.face import webapp_url
from bots.telegram.groups import GroupDeliveryNotifier, TelegramGroups
from bots.telegram.limits import limited
from core.flood import gate_from
from core.ports import ChannelParts
from core.shop import Shop
from handlers.cardface import CardFaceScreens
from handlers.customer import CustomerFlow
from locales import Translator


def storefront(settings: Any, shop: Shop, port: TelegramPort) -> TelegramFrontend:
    """The library-neutral part: flow and frontend; `frontend.parts` holds the notifiers, the Stars gateway and
    the merchant alerts the outbox and the shop use, for the composition root to register (App.plug)."""
    # the bot's buckets, shared by every process (core/coordination.py)
    port = limited(port, settings.telegram.limits, shop.metrics, shared=shop.shared, bot=bot_id(settings))
    i18n = Translator(settings.store.languages, settings.store.default_language)
    flow = CustomerFlow(shop, i18n, shop_name=settings.store.name, support=settings.store.support,
                        show_stars=True, numbered=False, ask_phone=True,
                        terms=settings.store.terms, webapp_url=webapp_url(settings))

    async def invite(payload: str) -> str:
        """A buyer's referral link (core/members/): the bot's t.me link with the start payload."""
        return f"https://t.me/{await port.username()}?start={payload}"

    flow.invite = invite
    async def deep_link(payload: str) -> str:  # a group-buy's share link (handlers/group_buy.py)
        return f"https://t.me/{await port.username()}?start={payload}"

    flow.share_link = deep_link
    minutes = settings.telegram.delete_code_after
    cards = None
    if shop.card_faces is not None:  # resellers' card faces
        cards = CardFaceScreens(shop.card_faces, paint_card, i18n, settings.store.default_language)
    notifier = TelegramNotifier(flow, port, timedelta(minutes=minutes) if minutes else None, cards)
    parts = ChannelParts({CHANNEL: notifier}, [StarsGateway(port)])
    admin = TelegramAdmin(shop, port, i18n, admins=list(settings.telegram.admins))
    if settings.telegram.admins:  # merchant alerts with buttons
        parts.alerts.append(TelegramAlerts(port, i18n, shop, admins=settings.telegram.admins))
    groups = None
    desk = shop.groups  # reseller group chats
    if desk is not None:
        groups = TelegramGroups(desk, shop, port, i18n, admins=list(settings.telegram.admins))
        parts.notifiers[desk.deliver_channel] = GroupDeliveryNotifier(groups, notifier)
    frontend = TelegramFrontend(shop, flow, port, i18n, admin, groups,
                                flood=gate_from(settings.risk, shop.shared, "telegram"),
                                exempt=frozenset(settings.telegram.admins))
    frontend.parts = parts
    return frontend
