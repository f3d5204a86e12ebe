"""Reseller ordering in Telegram group chats: the GroupCommands the frontend hands group commands and
the buttons of group messages to, and the notifier of the `telegram_group` outbox channel.

A quote is answered in the group with Confirm / Cancel (only the ordering member may press them; anyone else
gets a "not yours" answer to the tap). Codes never go to the group: the outbox delivers them to the member in
private (a protected .txt for large orders, see common.render), then the group message is edited to
"delivered". A member who never started the bot (403) gets a deep link in the group message,
t.me/<bot>?start=g<order>; starting the bot with it queues the delivery again. Group messages keep within
Telegram's 20 a minute per group through the LimitedPort; a flood of /buy is throttled in core/groups.py.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from bots.telegram.common import TelegramNotifier, TelegramPort, buyer_of, render
from core.errors import RecipientUnreachable
from core.groups import GroupDesk, GroupOrder
from core.ports import Delivery
from core.shop import Shop
from handlers.groups import GroupCtx, GroupFlow, parse_group_command
from handlers.screen import Screen
from locales import Translator

log = logging.getLogger(__name__)

START_PREFIX = "g"  # deep-link payload: g<order id> (A-Z0-9, well under Telegram's 64 characters)


class TelegramGroups:
    """Implements bots.telegram.common.GroupCommands."""

    def __init__(self, desk: GroupDesk, shop: Shop, port: TelegramPort, i18n: Translator, *,
                 admins: list[int]) -> None:
        self.desk = desk
        self.shop = shop  # the members' language (their customer records)
        self.port = port
        self.i18n = i18n
        self.flow = GroupFlow(desk, i18n)
        self.admins = set(admins)
        self._edits: set[asyncio.Task[None]] = set()

    async def _language(self, user_id: int, hint: str | None) -> str:
        shop = self.shop
        return (await shop.customer(buyer_of(user_id), hint)).language or shop.default_language

    async def on_text(self, user_id: int, chat_id: int, text: str, lang_hint: str | None, *,
                      username: str | None = None, reply_to: int | None = None) -> None:
        """A /command in a group: ours are answered in the group, others (and other bots') are left alone."""
        parsed = parse_group_command(text, await self.port.username())
        if parsed is None:
            return
        lang = await self._language(user_id, lang_hint)
        ctx = GroupCtx(str(chat_id), str(user_id), username, lang, user_id in self.admins,
                       str(reply_to) if reply_to is not None else None)
        answer = await self.flow.on_command(ctx, *parsed)
        if answer is None:
            return
        message_id = await self.port.send(chat_id, render(answer.screen)[0])
        if answer.quote is not None:
            await self.desk.shown(answer.quote, message_id)

    async def on_callback(self, user_id: int, chat_id: int, callback_id: str, data: str | None,
                          lang_hint: str | None) -> None:
        """Confirm / Cancel on a quote; the tap is always answered (garbage and foreign taps with a reason)."""
        lang = await self._language(user_id, lang_hint)
        ctx = GroupCtx(str(chat_id), str(user_id), None, lang, user_id in self.admins)
        answer = await self.flow.on_button(ctx, data or "")
        await self.port.answer_callback(callback_id, answer.alert)
        if answer.edit is not None and answer.message_id is not None:
            await self._edit(chat_id, answer.message_id, answer.edit)

    async def on_start(self, user_id: int, payload: str) -> bool:
        """A private /start: codes of group orders waiting for this member are sent now. True only for the
        group's deep link (/start g<order>) that queued them; otherwise the ordinary /start goes on."""
        ours = payload.startswith(START_PREFIX) and 1 < len(payload) <= 40
        queued = await self.desk.redeliver(str(user_id))  # every order waiting for them, the linked one included
        return ours and payload[len(START_PREFIX):] in queued

    async def _edit(self, chat_id: int, message_id: int, screen: Screen) -> None:
        try:
            await self.port.edit(chat_id, message_id, render(screen)[0])
        except Exception as exc:  # noqa: BLE001 - the group message is a courtesy; the order is done
            log.warning("could not update group message %s: %s", message_id, type(exc).__name__)

    def update_group(self, g: GroupOrder, screen: Screen) -> None:
        """Edit the quote's group message in the background: the group's 20 messages a minute may make it
        wait, and an outbox delivery must not wait for it (a send that times out would be sent again)."""
        if g.message_id is None:
            return
        task = asyncio.create_task(self._edit(int(g.chat), g.message_id, screen), name="group-edit")
        self._edits.add(task)
        task.add_done_callback(self._edits.discard)

    async def settle(self) -> None:
        """Wait for the group edits under way (shutdown, tests)."""
        while self._edits:
            await asyncio.gather(*list(self._edits), return_exceptions=True)


class GroupDeliveryNotifier:
    """The `telegram_group` outbox channel: the codes to the member in private, then the group message says
    delivered; a member the bot cannot write to gets the deep link in the group instead (the row gives up
    and is queued again when the member starts the bot)."""

    def __init__(self, groups: TelegramGroups, private: TelegramNotifier) -> None:
        self.groups = groups
        self.private = private
        self.delete_after = private.delete_after

    async def deliver(self, recipient: str, delivery: Delivery) -> list[int]:
        desk, flow = self.groups.desk, self.groups.flow
        try:
            refs = await self.private.deliver(recipient, delivery)
        except RecipientUnreachable:
            g = await desk.unreachable(delivery.order.id)
            if g is not None:
                link = f"https://t.me/{await self.groups.port.username()}?start={START_PREFIX}{delivery.order.id}"
                self.groups.update_group(g, flow.unreachable_screen(g, link))
            raise
        g = await desk.delivered(delivery.order.id)
        if g is not None:
            self.groups.update_group(g, flow.delivered_screen(g, delivery.product))
        return refs

    async def delete(self, recipient: str, refs: list[int]) -> None:
        await self.private.delete(recipient, refs)

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        await self.private.notify(recipient, language, key, params)
