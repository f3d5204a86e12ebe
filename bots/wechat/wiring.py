"""Builds the WeChat storefront on an open App and the store's HTTP server.

    runtime = app.add_wechat(server)                # build_wechat, then its notifier "wechat" (and gateway
                                                    # "wechat_pay") registered by the composition root;
                                                    # /wechat (and /wechat/pay/notify) on the server
    await runtime.start() ... await runtime.stop()
    await create_menu(settings)                     # `run.py wechat menu`
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bots.wechat import CHANNEL
from bots.wechat.admin import MerchantAlerts, WeChatAdmin
from bots.wechat.callback import WeChatCallback
from bots.wechat.client import SceneCodes, StoreWeChatClient, WeChatApi, WeComRobot
from bots.wechat.frontend import Pending, UserLocks, WeChatFrontend, WeChatNotifier
from bots.wechat.h5 import PATH as H5_PATH
from bots.wechat.h5 import add_shop_button, h5_enabled, menu_language
from bots.wechat.pay import NOTIFY_PATH, WeChatPayGateway, qr_png
from bots.wechat.pay_v3 import WeChatPayV3Gateway
from bots.wechat.replays import StoreReplayMemory
from config.settings import MenuButton
from core.flood import gate_from
from core.ports import ChannelParts
from core.shop import Shop
from handlers.customer import CustomerFlow
from locales import Translator

CALLBACK_PATH = "/wechat"
REVEAL_NEEDS_SAFE_MODE = "wechat.reveal.safe_mode_only"

log = logging.getLogger(__name__)


def menu_json(buttons: list[MenuButton]) -> dict[str, Any]:
    """`wechat.menu` as WeChat's menu/create body: an action is a CLICK whose key is the flow action id."""
    def one(b: MenuButton) -> dict[str, Any]:
        if b.sub_button:
            return {"name": b.name, "sub_button": [one(s) for s in b.sub_button]}
        if b.url:
            return {"type": "view", "name": b.name, "url": b.url}
        return {"type": "click", "name": b.name, "key": b.action}
    return {"button": [one(b) for b in buttons]}


def make_api(settings: Any) -> WeChatApi:
    wx = settings.wechat
    return WeChatApi(StoreWeChatClient(wx.appid, wx.secret.get_secret_value(), wx.api_base))


class WeChatRuntime:
    def __init__(self, settings: Any, shop: Shop, server: Any | None, *, budget: float | None = None) -> None:
        wx = settings.wechat
        self.settings = settings
        self.shop = shop
        self.api = make_api(settings)
        aes_key = wx.aes_key.get_secret_value()
        # Plain mode cannot prove who sent a message (the signature covers no body): nothing that shows codes or
        # acts as a merchant is answered there (bots/wechat/callback.py).
        safe = bool(aes_key)
        if not safe:
            log.warning("wechat: plain mode (no wechat.aes_key): merchant commands and codes shown again are "
                        "refused until safe mode is on")
        self.i18n = i18n = Translator(settings.store.languages, settings.store.default_language)
        self.flow = flow = CustomerFlow(shop, i18n, shop_name=settings.store.name,
                                        support=settings.store.support, show_stars=False, numbered=True,
                                        no_reveal=None if safe else REVEAL_NEEDS_SAFE_MODE, terms=settings.store.terms)
        flow.invite = SceneCodes(self.api).link  # a buyer's referral link: a parametric QR code (core/members/)
        locks = UserLocks()
        pending = Pending(shop, locks)
        webhook = wx.wecom_webhook.get_secret_value()
        self.alerts = MerchantAlerts(shop, self.api, i18n, admins=list(wx.admins),
                                     robot=WeComRobot(webhook) if webhook else None)
        self.notifier = WeChatNotifier(flow, self.api, i18n, pending, locks, self.alerts,
                                       template=wx.broadcast_template)
        # What this channel gives the shop; the composition root registers it (App.plug).
        self.parts = ChannelParts({CHANNEL: self.notifier})
        if self.alerts.enabled:  # the shop's alerts reach WeChat too
            self.parts.alerts.append(self.alerts)
        self.gateway: Any = None
        qr: Callable[[str], bytes] | None = None  # Native pay's QR codes, drawn only with WeChat Pay on
        if wx.pay.mch_id:  # wechat.pay.version picks the API; both have the same surface (bots/wechat/pay.py)
            self.gateway = (WeChatPayV3Gateway if wx.pay.version == 3 else WeChatPayGateway)(settings, shop)
            self.parts.gateways.append(self.gateway)
            qr = qr_png
        self.admin = WeChatAdmin(shop, i18n, admins=list(wx.admins), safe_mode=safe)
        kw = {"budget": budget} if budget is not None else {}
        self.frontend = WeChatFrontend(shop, flow, self.api, i18n, admin=self.admin, gateway=self.gateway,
                                       qr_png=qr, locks=locks, pending=pending,
                                       flood=gate_from(settings.risk, shop.shared, "wechat"),
                                       exempt=frozenset(wx.admins), **kw)
        # every process shares the pairs taken (replays.py)
        self.callback = WeChatCallback(wx.token.get_secret_value(), wx.appid, self.frontend.handle,
                                       aes_key=aes_key, replays=StoreReplayMemory(shop.committer),
                                       metrics=shop.metrics)
        if server is not None:
            server.add_wechat(CALLBACK_PATH, self.callback)
            if self.gateway is not None:
                # one notify_url whatever the version; v3 notices need their headers (docs/wechat-pay.md)
                server.add_wechat_pay(NOTIFY_PATH, self.gateway.handle_notify, v3=self.gateway.notify_headers)

    async def start(self) -> None:
        """Before the HTTP server takes messages: the QR drawing process is up."""
        await self.frontend.start()

    async def idle(self) -> None:
        """Every follow-up message and alert sent (tests, benchmarks)."""
        await self.frontend.idle()
        await self.alerts.idle()

    async def stop(self) -> None:
        await self.frontend.stop()
        await self.alerts.stop()
        if self.gateway is not None:
            await self.gateway.close()
        self.api.close()


async def create_menu(settings: Any) -> dict[str, Any]:
    """`run.py wechat menu`: the custom menu from `wechat.menu`, created with menu/create; with the H5 shop on, its
    Shop button too (bots/wechat/h5.py; MenuFull when there is no room, nothing created)."""
    menu = menu_json(list(settings.wechat.menu))
    if h5_enabled(settings):
        i18n = Translator(settings.store.languages, settings.store.default_language)
        name = i18n.t(menu_language(settings), "wechat.webshop.menu_button")
        menu, _ = add_shop_button(menu, name, settings.server.public_url.rstrip("/") + H5_PATH)
    api = make_api(settings)
    try:
        await api.create_menu(menu)
    finally:
        api.close()
    return menu


def build_wechat(settings: Any, shop: Shop, server: Any | None = None, *, budget: float | None = None
                 ) -> WeChatRuntime:
    return WeChatRuntime(settings, shop, server, budget=budget)
