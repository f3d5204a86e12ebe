"""Merchant commands in the Telegram chat: /admin, /stock, /import, /orders, /order, /refund, /product, /audit,
/reseller, /wallet, /linkgroup, /unlinkgroup (a reseller's owner may read their own /wallet), /report (the text,
then each chart as a photo), /export (a protected CSV document).

The frontend offers every private message (text, or a document with its caption) here first. Merchants are
the user ids in `telegram.admins`; anyone else sending a merchant command gets "not allowed" and nothing
else (the attempt is audited). `/orders` from a buyer is the buyer's own "My orders", so it is left to the
customer flow. Everything else that is not a merchant command returns False.

The commands themselves are handlers/admin.py (channel-neutral); this adapter checks the sender, fetches the
uploaded file, keeps one progress message up to date while an import runs, and renders tables in <pre>.
"""
from __future__ import annotations

import html
import logging

from bots.telegram.common import CHANNEL, TEXT_LIMIT, Button, Document, OutMessage, TelegramPort, buyer_of
from core.admin import Merchant
from core.shop import Shop
from handlers import console_link as console_ui
from handlers.admin import COMMANDS, AdminCtx, AdminFlow, ImportFile, ProgressSink, TableScreen, split_command
from handlers.groups import ResellerCommands
from handlers.screen import Screen
from locales import Translator

log = logging.getLogger(__name__)

BUYER_COMMANDS = {"/orders"}  # merchant commands that mean something else to a buyer
CAPTION_LIMIT = 1024  # a photo's or document's caption (the text as shown)


def render_admin(screen: Screen) -> list[OutMessage]:
    """A merchant screen as HTML messages: bold title, the body (tables in <pre>), the footer; split into
    several messages at line ends when longer than Telegram allows. A screen with a file (an export) or an image
    (a report's chart) is one protected document or photo whose caption is the title and the body."""
    if screen.file is not None or screen.image is not None:
        text = "\n".join(x for x in (screen.body, screen.footer) if x)[:CAPTION_LIMIT - len(screen.title) - 1]
        caption = "\n".join([f"<b>{html.escape(screen.title)}</b>", *([html.escape(text)] if text else [])])
        return [OutMessage(caption, document=screen.file, photo=screen.image)]
    title = f"<b>{html.escape(screen.title)}</b>"
    footer = html.escape(screen.footer) if screen.footer else ""
    mono = isinstance(screen, TableScreen)

    def wrap(lines: list[str]) -> str:
        text = html.escape("\n".join(lines))
        return f"<pre>{text}</pre>" if mono else text

    lines = screen.body.split("\n") if screen.body else []
    chunks: list[list[str]] = [[]]
    budget = TEXT_LIMIT - len(title) - len(footer) - 32
    size = 0
    for line in lines:
        cost = len(html.escape(line)) + 1
        if chunks[-1] and size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(line[:budget])
        size += cost
    out = []
    for i, chunk in enumerate(chunks):
        parts = [title] if i == 0 else []
        if chunk:
            parts.append(wrap(chunk))
        if footer and i == len(chunks) - 1:
            parts.append(footer)
        out.append(OutMessage("\n".join(parts)[:TEXT_LIMIT]))
    # A merchant screen's actions are commands ("/approve R1A2B3"): each button's callback data is the command,
    # which comes back to TelegramAdmin.handle and is checked like a typed one.
    out[-1].buttons = [[Button(a.label, callback_data=a.id[:64]) for a in row] for row in screen.actions]
    return out


class TelegramAdmin:
    def __init__(self, shop: Shop, port: TelegramPort, i18n: Translator, *, admins: list[int],
                 progress_interval: float = 1.0, import_batch: int | None = None) -> None:
        self.shop = shop
        self.port = port
        self.i18n = i18n
        self.admins = set(admins)
        self.flow = AdminFlow(shop, i18n, progress_interval=progress_interval, import_batch=import_batch)

    async def handle(self, user_id: int, chat_id: int, text: str, document: Document | None,
                     lang_hint: str | None) -> bool:
        command, _ = split_command(text)
        merchant = user_id in self.admins
        if command == console_ui.COMMAND:  # merchants and staff (core/console.py decides, and audits a refusal)
            lang = (await self.shop.customer(buyer_of(user_id), lang_hint)).language or self.shop.default_language
            await self._send(chat_id, await console_ui.console_link(self.shop.console, self.i18n,
                                                                     Merchant(CHANNEL, str(user_id)), lang))
            return True
        if command not in COMMANDS:
            if document is not None and merchant:  # a file without /import: say how
                command = "/import"
            else:
                return False
        if command in BUYER_COMMANDS and not merchant:
            return False
        lang = (await self.shop.customer(buyer_of(user_id), lang_hint)).language or self.shop.default_language
        if command == "/wallet" and not merchant and self.shop.groups is not None:
            # a reseller's owner reads their own wallet (handlers/groups.py)
            wallet = await ResellerCommands(self.shop.groups, self.i18n).own_wallet(str(user_id), lang)
            await self._send(chat_id, wallet)
            return True
        if not merchant:
            await self._send(chat_id, await self.flow.deny(CHANNEL, str(user_id), command, lang))
            return True
        ctx = AdminCtx(Merchant(CHANNEL, str(user_id)), lang)
        file = None
        if document is not None:
            file_id = document.file_id
            file = ImportFile(document.file_name, document.file_size, lambda: self.port.download(file_id))
        try:
            screens = await self.flow.on_command(ctx, text, file, self._progress(chat_id))
        except Exception as exc:  # noqa: BLE001 - the merchant gets an answer; the log gets the type only
            log.error("merchant command %s failed: %s", command, type(exc).__name__)
            screens = [Screen(self.i18n.t(lang, "error.internal"), error="internal")]
        for screen in screens:
            await self._send(chat_id, screen)
        return True

    async def _send(self, chat_id: int, screen: Screen) -> None:
        for msg in render_admin(screen):
            await self.port.send(chat_id, msg)

    def _progress(self, chat_id: int) -> ProgressSink:
        """The first screen is sent; later ones replace it (edits, throttled by the flow)."""
        message_id: int | None = None
        last = ""

        async def show(screen: Screen) -> None:
            nonlocal message_id, last
            msg = render_admin(screen)[0]
            if message_id is None:
                message_id = await self.port.send(chat_id, msg)
            elif msg.text != last:  # Telegram refuses an edit that changes nothing
                await self.port.edit(chat_id, message_id, msg)
            last = msg.text

        return show
