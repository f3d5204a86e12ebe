"""Merchants on WeChat: the admin commands as text, and alerts.

The openids in `wechat.admins` send `/stock`, `/orders`, `/order ID`, `/refund ID`, `/audit ID`, `/product …`,
`/admin` as ordinary messages; the commands are handlers/admin.py, as in Telegram. Anyone else sending one gets
"not allowed" (audited as `admin_denied`), except `/orders`, which is a buyer's own "My orders". `/import`
needs a file, which an Official Account cannot take from a merchant: the answer says to use Telegram or
`run.py codes import`; `/export` would send one, which it cannot send either: the answer points to the Telegram bot
and the web console. `/report` answers with the figures as text, then its charts as customer-service images
(bots/wechat/frontend.py). Merchant commands need safe mode (`wechat.aes_key`): in plain mode anyone who saw one
genuine callback URL can send a message as any openid, so a merchant's command is refused there with a note
on how to turn safe mode on (audited as `admin` with `refused: plain_mode`).

Alerts go to the merchant openids by customer-service message (when their 48-hour window is open) and, when
`wechat.wecom_webhook` is set, to a WeCom group robot (send-only, at most 20 a minute): a product running
low after a sale (once an hour per product), and codes held back because the buyer's window was closed.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from bots.wechat import CHANNEL, LANGUAGE_HINT
from bots.wechat.client import WeComRobot
from bots.wechat.frontend import Api, buyer_of
from core.admin import Merchant
from core.alerts import Commands
from core.background import Background
from core.errors import StoreError
from core.models import localized
from core.shop import Shop
from handlers import console_link as console_ui
from handlers.admin import COMMANDS, AdminCtx, AdminFlow, split_command
from handlers.screen import Screen
from locales import Translator

log = logging.getLogger(__name__)

BUYER_COMMANDS = {"/orders"}  # merchant commands that mean something else to a buyer
LOW_STOCK_EVERY = 3600.0  # seconds between two low-stock alerts for one product


class WeChatAdmin:
    def __init__(self, shop: Shop, i18n: Translator, *, admins: list[str], safe_mode: bool = True) -> None:
        self.shop = shop
        self.i18n = i18n
        self.admins = set(admins)
        self.safe_mode = safe_mode
        self.flow = AdminFlow(shop, i18n)

    async def language(self, openid: str) -> str:
        cust = await self.shop.customer(buyer_of(openid), LANGUAGE_HINT)
        return cust.language or self.shop.default_language

    async def handle(self, openid: str, text: str) -> list[Screen] | None:
        """The answer to a merchant command (or its refusal); None when the text is no merchant command."""
        command, _ = split_command(text)
        if command == console_ui.COMMAND:
            return [await self._console(openid)]
        if command not in COMMANDS:
            return None
        merchant = openid in self.admins
        if command in BUYER_COMMANDS and not merchant:
            return None
        lang = await self.language(openid)
        if not merchant:
            return [await self.flow.deny(CHANNEL, openid, command, lang)]
        ctx = AdminCtx(Merchant(CHANNEL, openid), lang)
        if not self.safe_mode:
            log.warning("a merchant command over WeChat refused: plain mode cannot prove who sent it")
            try:
                await self.flow.service.record(ctx.merchant, command.lstrip("/") or "?", refused="plain_mode")
            except Exception as exc:  # noqa: BLE001 - the refusal still goes out
                log.error("could not audit a refused admin command: %s", type(exc).__name__)
            return [Screen(self.i18n.t(lang, "wechat.admin.safe_mode_only"), error="plain_mode")]
        if command == "/import":
            return [Screen(self.i18n.t(lang, "wechat.admin.no_import"))]
        if command == "/export":  # an Official Account cannot send a merchant a file
            return [Screen(self.i18n.t(lang, "wechat.admin.no_export"))]
        try:
            return [_typed(s) for s in await self.flow.on_command(ctx, text)]
        except Exception as exc:  # noqa: BLE001 - the merchant gets an answer; the log gets the type only
            log.error("merchant command %s failed: %s", command, type(exc).__name__)
            return [Screen(self.i18n.t(lang, "error.internal"), error="internal")]

    async def _console(self, openid: str) -> Screen:
        """A console sign-in link for a merchant or staff member; refused in plain mode, where anyone who saw one
        genuine callback URL could ask for it as any openid (the link would go to them)."""
        lang = await self.language(openid)
        if not self.safe_mode:
            log.warning("/console over WeChat refused: plain mode cannot prove who sent it")
            return Screen(self.i18n.t(lang, "wechat.admin.safe_mode_only"), error="plain_mode")
        return await console_ui.console_link(self.shop.console, self.i18n, Merchant(CHANNEL, openid), lang)


def _typed(screen: Screen) -> Screen:
    """A merchant screen's actions are commands (/tickets' buttons): listed as "label: /command" lines to send
    back, never as numbered options (a number is no merchant command)."""
    if screen.actions:
        screen.footer = "\n".join([*([screen.footer] if screen.footer else []),
                                   *(f"{a.label}: {a.id}" for a in screen.flat_actions())])
        screen.actions = []
    return screen


class MerchantAlerts:
    """Short notes for the merchants; sent in the background, never holding up a delivery."""

    def __init__(self, shop: Shop, api: Api, i18n: Translator, *, admins: list[str],
                 robot: WeComRobot | None = None, low_stock_every: float = LOW_STOCK_EVERY) -> None:
        self.shop = shop
        self.api = api
        self.i18n = i18n
        self.admins = list(admins)
        self.robot = robot
        self.low_stock_every = low_stock_every
        self._last_low: dict[int, float] = {}
        self._tasks = Background(log, "a merchant alert")

    @property
    def enabled(self) -> bool:
        return bool(self.admins or self.robot)

    def held(self, order_id: str) -> None:
        if self.enabled:
            self._tasks.spawn(self.send("wechat.alert.held", order=order_id))

    def sold(self, product_id: int) -> None:
        if self.enabled:
            self._tasks.spawn(self._check_stock(product_id))

    async def idle(self) -> None:
        await self._tasks.idle()

    async def stop(self) -> None:
        await self._tasks.stop()
        if self.robot is not None:
            await self.robot.close()

    async def _check_stock(self, product_id: int) -> None:
        now = time.monotonic()
        if now - self._last_low.get(product_id, -self.low_stock_every) < self.low_stock_every:
            return
        try:
            view = await self.shop.product_view(product_id)
        except StoreError:
            return  # taken off sale meanwhile
        if view.available is None or not (view.low or view.available == 0):
            return
        self._last_low[product_id] = now
        p = view.product
        await self.send("wechat.alert.low_stock", sku=p.sku, n=view.available,
                        title=lambda lang: localized(p.title, lang, self.shop.default_language))

    async def alert(self, key: str, params: dict[str, Any], commands: Commands = ()) -> None:
        """core.alerts.AdminAlerts: the scheduler's alerts (jobs/store.py) go the same way as the ones above.
        Offered commands are listed under the text, to be sent back as typed (`/approve R1A2B3`)."""
        if self.enabled:
            await self.send(key, _commands=commands, **params)

    async def send(self, key: str, _commands: Commands = (), **params: Any) -> None:
        """To every merchant openid (in their language) and the WeCom robot (in Chinese when the store speaks it)."""
        for openid in self.admins:
            try:
                cust = await self.shop.customer(buyer_of(openid), LANGUAGE_HINT)
                lang = cust.language or self.shop.default_language
                await self.api.send_text(openid, self._phrase(lang, key, params, _commands))
            except Exception as exc:  # noqa: BLE001 - an alert is best effort (the window may be closed)
                log.warning("merchant alert to a WeChat admin not sent: %s", type(exc).__name__)
        if self.robot is not None:
            lang = self.shop.match_language(LANGUAGE_HINT)
            try:
                await self.robot.send(self._phrase(lang, key, params))
            except Exception as exc:  # noqa: BLE001
                log.warning("merchant alert to the WeCom robot not sent: %s", type(exc).__name__)

    def _phrase(self, lang: str, key: str, params: dict[str, Any], commands: Commands = ()) -> str:
        values = {k: v(lang) if callable(v) else v for k, v in params.items()}
        lines = [self.i18n.t(lang, key, **values)]
        lines += [f"{self.i18n.t(lang, label)}: {command}" for label, command in commands]
        return "\n".join(lines)
