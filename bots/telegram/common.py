"""What both Telegram adapters (aiogram, python-telegram-bot) share: rendering Screens into Telegram
messages, the update logic (menu, buttons, invoices, pre-checkout, payments), Stars refunds, delivery.

Each adapter implements `TelegramPort` with its library and feeds updates into `TelegramFrontend`.
"""
from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from core.errors import StoreError
from core.flood import FloodGate
from core.models import Buyer, Payment
from core.orders import PaymentNotice
from core.outbox import OutboxDispatcher
from core.payments import Outcome, StarTransaction, utc_from_timestamp
from core.ports import ChannelParts, Delivery
from core.shop import Shop
from handlers import errors
from handlers.customer import Ctx, CustomerFlow
from handlers.screen import Screen
from locales import Translator

log = logging.getLogger(__name__)

CHANNEL = "telegram"
PROVIDER = "telegram_stars"
TEXT_LIMIT = 4096
CODES_INLINE_LIMIT = 3000  # more code text than this goes out as a .txt document
COPY_BUTTONS_MAX = 8  # one copy button per code, for small orders
COPY_TEXT_MAX = 256  # Telegram's CopyTextButton limit
GROUP_TYPES = frozenset({"group", "supergroup"})
PAYMENT_ATTEMPTS = 5  # a successful_payment is retried this often (1+2+4+8 s between) before polling moves on


@dataclass(slots=True)
class Button:
    text: str
    callback_data: str | None = None
    copy_text: str | None = field(default=None, repr=False)
    pay: bool = False  # an invoice's Pay button (must come first on an invoice)
    web_app: str | None = None  # opens this https URL as a Mini App (WebAppInfo)


@dataclass(slots=True)
class OutMessage:
    """One Telegram message, library-neutral. Text is HTML (parse_mode=HTML)."""

    text: str = field(repr=False)
    buttons: list[list[Button]] = field(default_factory=list)
    protect: bool = False
    document: tuple[str, bytes] | None = field(default=None, repr=False)
    photo: bytes | None = field(default=None, repr=False)  # sent as a protected photo with the text as caption
    ask_contact: str | None = None  # a reply keyboard with one "share my contact" button labelled so
    remove_keyboard: bool = False  # take a reply keyboard (ask_contact) away


class TelegramPort(Protocol):
    """The Bot API calls the storefront needs; each library adapter implements them."""

    async def send(self, chat_id: int, message: OutMessage) -> int: ...
    async def edit(self, chat_id: int, message_id: int, message: OutMessage) -> None:
        """Replace a text message's text and buttons (progress messages)."""
    async def delete(self, chat_id: int, message_id: int) -> None: ...
    async def send_invoice(self, chat_id: int, title: str, description: str, payload: str, label: str,
                           stars: int, buttons: list[list[Button]] | None = None) -> int:
        """A Stars invoice; `buttons`, when given, start with the Pay button (Telegram's rule)."""
    async def create_invoice_link(self, title: str, description: str, payload: str, label: str, stars: int) -> str:
        """createInvoiceLink: a Stars invoice as a link (the Mini App opens it with Telegram.WebApp.openInvoice);
        paying it comes back as the usual pre_checkout_query and successful_payment."""
    async def set_menu_button(self, text: str, url: str) -> None:
        """setChatMenuButton (every chat): a web_app menu button opening `url` (https)."""
    async def answer_callback(self, callback_id: str, text: str | None = None) -> None: ...
    async def answer_pre_checkout(self, query_id: str, ok: bool, error: str | None = None) -> None: ...
    async def refund_stars(self, user_id: int, charge_id: str) -> None:
        """Done also when Telegram says the charge was refunded already."""
    async def star_transactions(self, offset: int, limit: int) -> list[StarTransaction]: ...
    async def download(self, file_id: str) -> bytes: ...
    async def username(self) -> str:
        """The bot's @username (getMe, asked once): group commands may be addressed /buy@username."""


class LibraryPort:
    """The TelegramPort calls as aiogram and python-telegram-bot both spell them (same method and parameter
    names). Each adapter subclasses it and supplies its library's types: a keyboard, an uploaded file, a
    price; and the file download, which the two libraries do differently."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot
        self.closed = False  # set when the bot stops: later sends fail (the outbox keeps them) instead of
        # quietly opening a new HTTP session nobody closes (aiogram does that on a closed session)

    def _open(self) -> None:
        if self.closed:
            raise ConnectionError("the Telegram bot has stopped; the outbox sends this after the next start")

    def _markup(self, buttons: list[list[Button]]) -> Any:
        raise NotImplementedError

    def _file(self, data: bytes, name: str) -> Any:
        raise NotImplementedError

    def _price(self, label: str, stars: int) -> Any:
        raise NotImplementedError

    def _reply_keyboard(self, contact_label: str | None) -> Any:
        """A one-time reply keyboard with a request_contact button, or (None) one that removes it."""
        raise NotImplementedError

    def _commands(self, commands: list[tuple[str, str]]) -> list[Any]:
        """BotCommand objects of the library."""
        raise NotImplementedError

    def _chat_scope(self, chat_id: int) -> Any:
        """BotCommandScopeChat of the library."""
        raise NotImplementedError

    def _menu_button(self, text: str, url: str) -> Any:
        """MenuButtonWebApp of the library."""
        raise NotImplementedError

    async def download(self, file_id: str) -> bytes:
        raise NotImplementedError

    # The bot's face (bots/telegram/face.py): language "" is every language without its own texts.
    async def set_commands(self, commands: list[tuple[str, str]], language: str = "",
                           chat_id: int | None = None) -> None:
        """setMyCommands: the "/" menu of everyone (chat_id None) or of one chat (a merchant's)."""
        self._open()
        await self.bot.set_my_commands(self._commands(commands),
                                       scope=self._chat_scope(chat_id) if chat_id is not None else None,
                                       language_code=language or None)

    async def set_description(self, text: str, language: str = "") -> None:
        """setMyDescription: what an empty chat with the bot shows."""
        self._open()
        await self.bot.set_my_description(description=text, language_code=language or None)

    async def set_short_description(self, text: str, language: str = "") -> None:
        """setMyShortDescription: the bot's profile line (and its link previews)."""
        self._open()
        await self.bot.set_my_short_description(short_description=text, language_code=language or None)

    async def username(self) -> str:
        name = getattr(self, "_username", None)
        if name is None:
            name = self._username = (await self.bot.get_me()).username or ""
        return name

    async def send(self, chat_id: int, message: OutMessage) -> int:
        self._open()
        if message.ask_contact is not None or message.remove_keyboard:
            markup = self._reply_keyboard(message.ask_contact)
        else:
            markup = self._markup(message.buttons)
        if message.document is not None:
            name, data = message.document
            sent = await self.bot.send_document(chat_id, self._file(data, name), caption=message.text[:1024],
                                                parse_mode="HTML", reply_markup=markup, protect_content=True)
        elif message.photo is not None:
            sent = await self.bot.send_photo(chat_id, self._file(message.photo, "card.png"),
                                             caption=message.text[:1024], parse_mode="HTML", reply_markup=markup,
                                             protect_content=True)
        else:
            sent = await self.bot.send_message(chat_id, message.text, parse_mode="HTML", reply_markup=markup,
                                               protect_content=True if message.protect else None)
        return sent.message_id

    async def edit(self, chat_id: int, message_id: int, message: OutMessage) -> None:
        self._open()
        await self.bot.edit_message_text(message.text, chat_id=chat_id, message_id=message_id, parse_mode="HTML",
                                         reply_markup=self._markup(message.buttons))

    async def delete(self, chat_id: int, message_id: int) -> None:
        self._open()
        await self.bot.delete_message(chat_id, message_id)

    async def send_invoice(self, chat_id: int, title: str, description: str, payload: str, label: str,
                           stars: int, buttons: list[list[Button]] | None = None) -> int:
        # Stars: currency XTR, exactly one price, no provider_token (both libraries omit it when unset).
        sent = await self.bot.send_invoice(chat_id, title=title, description=description, payload=payload,
                                           currency="XTR", prices=[self._price(label, stars)],
                                           reply_markup=self._markup(buttons or []))
        return sent.message_id

    async def create_invoice_link(self, title: str, description: str, payload: str, label: str, stars: int) -> str:
        self._open()
        link = await self.bot.create_invoice_link(title=title, description=description, payload=payload,
                                                  currency="XTR", prices=[self._price(label, stars)])
        return str(link)

    async def set_menu_button(self, text: str, url: str) -> None:
        self._open()
        await self.bot.set_chat_menu_button(menu_button=self._menu_button(text, url))

    async def menu_button_url(self) -> str | None:
        """getChatMenuButton (every chat): the URL of a web_app menu button, None for any other button."""
        self._open()
        button = await self.bot.get_chat_menu_button()
        web_app = getattr(button, "web_app", None)
        return getattr(web_app, "url", None) if getattr(button, "type", "") == "web_app" else None

    async def reset_menu_button(self) -> None:
        """setChatMenuButton without a button: Telegram's default (the "/" commands)."""
        self._open()
        await self.bot.set_chat_menu_button()

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        await self.bot.answer_callback_query(callback_id, text=text)

    async def answer_pre_checkout(self, query_id: str, ok: bool, error: str | None = None) -> None:
        await self.bot.answer_pre_checkout_query(query_id, ok=ok, error_message=error)

    async def refund_stars(self, user_id: int, charge_id: str) -> None:
        """Give a Stars payment back. Telegram's CHARGE_ALREADY_REFUNDED means an earlier call went through
        (its answer was lost, or the store crashed before recording it): that refund is done, not failed."""
        self._open()
        try:
            await self.bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge_id)
        except Exception as exc:
            if "charge_already_refunded" not in str(exc).lower():
                raise
            log.info("Stars charge of user %s was refunded before; done", user_id)

    async def star_transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """getStarTransactions as the core's StarLedger (the same attribute names in aiogram and PTB)."""
        self._open()
        answer = await self.bot.get_star_transactions(offset=offset, limit=limit)
        out = []
        for tx in answer.transactions:
            partner = tx.source if tx.source is not None else tx.receiver
            user = getattr(partner, "user", None)
            when = tx.date if isinstance(tx.date, datetime) else utc_from_timestamp(int(tx.date))
            out.append(StarTransaction(
                str(tx.id), int(tx.amount), tx.source is not None, str(user.id) if user is not None else "",
                (getattr(partner, "invoice_payload", None) or "") if tx.source is not None else "",
                when if when.tzinfo is not None else when.replace(tzinfo=UTC)))
        return out


@dataclass(slots=True)
class Document:
    """A file a user sent (e.g. codes to import), not yet downloaded."""

    file_id: str
    file_name: str
    file_size: int | None = None


class AdminCommands(Protocol):
    """Merchant commands (bots/telegram/admin.py). Returns True when the message was an admin command.
    A button on a merchant's message carries a command as its callback data ("/approve R1A2B3"); it comes
    here like a typed command and is checked the same way."""

    async def handle(self, user_id: int, chat_id: int, text: str, document: Document | None,
                     lang_hint: str | None) -> bool: ...


class GroupCommands(Protocol):
    """Commands typed in group chats (reseller ordering) and the buttons on the bot's group messages."""

    async def on_text(self, user_id: int, chat_id: int, text: str, lang_hint: str | None, *,
                      username: str | None = None, reply_to: int | None = None) -> None:
        """`username`: the sender's @username; `reply_to`: the user id of the message this one replies to."""
    async def on_callback(self, user_id: int, chat_id: int, callback_id: str, data: str | None,
                          lang_hint: str | None) -> None: ...
    async def on_start(self, user_id: int, payload: str) -> bool:
        """A private /start (payload "" or a deep link); True when it was a group message's link, handled."""


def render(screen: Screen) -> list[OutMessage]:
    """A Screen as Telegram messages: bold title, escaped body, codes in spoilers with copy buttons and
    protected content; too many codes for one message go out as a protected .txt document."""
    parts = [f"<b>{html.escape(screen.title)}</b>"]
    if screen.body:
        parts.append(html.escape(screen.body))
    buttons = [[Button(a.label, web_app=a.web_app) if a.web_app else Button(a.label, callback_data=a.id)
                for a in row if a.copy_text is None] for row in screen.actions]
    buttons = [row for row in buttons if row]
    if screen.ask_contact is not None or screen.remove_keyboard:  # a reply keyboard replaces the inline one
        return [OutMessage("\n".join(parts)[:TEXT_LIMIT], ask_contact=screen.ask_contact,
                           remove_keyboard=screen.remove_keyboard)]
    if screen.image is not None:  # a card face or a QR code: one protected photo, the text as its caption
        return [OutMessage("\n".join(parts)[:1024], buttons, protect=True, photo=screen.image)]
    if not screen.secrets:
        return [OutMessage("\n".join(parts)[:TEXT_LIMIT], buttons)]
    codes_text = "\n".join(f"<tg-spoiler><code>{html.escape(c)}</code></tg-spoiler>" for c in screen.secrets)
    footer = [html.escape(screen.footer)] if screen.footer else []
    if len(codes_text) <= CODES_INLINE_LIMIT:
        copy = [[Button(f"📋 {i}" if len(screen.secrets) > 1 else "📋", copy_text=c)]
                for i, c in enumerate(screen.secrets, start=1)
                if len(screen.secrets) <= COPY_BUTTONS_MAX and len(c) <= COPY_TEXT_MAX]
        text = "\n".join([*parts, codes_text, *footer])
        return [OutMessage(text, copy + buttons, protect=True)]
    body = ("\n".join(screen.secrets) + "\n").encode()
    name = "codes.txt"
    return [OutMessage("\n".join([*parts, *footer]), buttons, protect=True, document=(name, body))]


@dataclass(frozen=True, slots=True)
class InvoiceWords:
    """What a Stars invoice says, within Telegram's limits (title 32, description 255, price label 64)."""

    title: str
    description: str
    label: str


def invoice_words(i18n: Translator, lang: str, order_id: str, title: str, qty: int, minutes: int) -> InvoiceWords:
    """The words of a held order's invoice in the buyer's language: the chat's invoice and the Mini App's invoice
    link (bots/miniapp/hosts.py) say the same."""
    description = i18n.t(lang, "telegram.invoice", order=order_id, title=title, qty=qty, minutes=minutes)
    return InvoiceWords(title[:32], description[:255], f"{title} × {qty}"[:64])


def buyer_of(user_id: int) -> Buyer:
    return Buyer(CHANNEL, str(user_id))


async def stop_sending(dispatcher: OutboxDispatcher, port: LibraryPort, drain_seconds: float = 5.0) -> None:
    """A stopping bot first lets the outbox send what is due (codes just paid for), then refuses further sends:
    whatever comes due later stays in the outbox for the next start."""
    if dispatcher.running:
        try:
            await asyncio.wait_for(dispatcher.drain(), timeout=drain_seconds)
        except Exception as exc:  # noqa: BLE001 - unsent rows stay in the outbox
            log.warning("outbox not drained before the bot stopped: %s", type(exc).__name__)
    port.closed = True


class TelegramFrontend:
    """Turns Telegram updates into flow calls and flow screens into Bot API calls."""

    def __init__(self, shop: Shop, flow: CustomerFlow, port: TelegramPort, i18n: Translator,
                 admin: AdminCommands | None = None, groups: GroupCommands | None = None,
                 flood: FloodGate | None = None, exempt: frozenset[int] = frozenset()) -> None:
        self.shop = shop
        self.flow = flow
        self.port = port
        self.i18n = i18n
        self.admin = admin
        self.groups = groups  # None: the bot stays silent in groups
        self.flood = flood  # incoming updates per user (payments are never held back); `exempt`: the merchants
        self.exempt = exempt
        self.parts = ChannelParts()  # what this channel gives the shop (storefront fills it; App.plug registers it)

    async def _admitted(self, user_id: int, chat_id: int, lang_hint: str | None,
                        callback_id: str | None = None) -> bool:
        """Flood limit: True to handle the update (after a wait when the sender is fast); False to drop it.
        The first dropped update of a flood is answered with "slow down"; later ones with nothing."""
        if self.flood is None or user_id in self.exempt:
            return True
        a = await self.flood.check(user_id)
        if not a.drop:
            if a.delay:
                await asyncio.sleep(a.delay)
            return True
        text = None
        if a.warn:
            text = self.i18n.t(await self.language(user_id, lang_hint), "risk.flood.slow_down")
        if callback_id is not None:  # a tap always gets its answer, or the button keeps spinning
            await self.port.answer_callback(callback_id, text)
        elif text is not None:
            await self.port.send(chat_id, OutMessage(html.escape(text)))
        return False

    async def language(self, user_id: int, hint: str | None) -> str:
        c = await self.shop.customer(buyer_of(user_id), hint)
        return c.language or self.shop.default_language

    async def on_text(self, user_id: int, chat_id: int, text: str, lang_hint: str | None,
                      document: Document | None = None) -> None:
        """A message in a private chat: a merchant command, a buyer's command, or anything typed."""
        if not await self._admitted(user_id, chat_id, lang_hint):
            return
        if self.admin is not None and await self.admin.handle(user_id, chat_id, text, document, lang_hint):
            return
        # group orders waiting for this member to start the bot are delivered now
        if (self.groups is not None and (text == "/start" or text.startswith("/start "))
                and await self.groups.on_start(user_id, text[len("/start"):].strip())):
            return
        ctx = Ctx(buyer_of(user_id), str(chat_id), lang_hint)
        word = text.strip().split(" ", 1)[0].split("@", 1)[0].lower()
        if word == "/paysupport":
            lang = await self.language(user_id, lang_hint)
            await self.port.send(chat_id, OutMessage(html.escape(self.i18n.t(lang, "telegram.paysupport",
                                                                             contact=self.flow.support or "—"))))
            return
        await self.show(chat_id, await self.flow.on_text(ctx, text), user_id)

    async def on_contact(self, user_id: int, chat_id: int, contact_user_id: int | None, phone: str,
                         lang_hint: str | None) -> None:
        """A shared contact: binds the phone only when it is the sender's own (contact.user_id == sender)."""
        if not await self._admitted(user_id, chat_id, lang_hint):
            return
        ctx = Ctx(buyer_of(user_id), str(chat_id), lang_hint)
        await self.show(chat_id, await self.flow.on_contact(ctx, phone, contact_user_id == user_id), user_id)

    async def on_group_text(self, user_id: int, chat_id: int, text: str, lang_hint: str | None, *,
                            username: str | None = None, reply_to: int | None = None) -> None:
        """A /command typed in a group or supergroup (`reply_to`: the user the message replies to). A dropped
        flood is not answered in the group."""
        if self.groups is None:
            return
        if self.flood is not None and user_id not in self.exempt:
            a = await self.flood.check(user_id)
            if a.drop:
                return
            if a.delay:
                await asyncio.sleep(a.delay)
        await self.groups.on_text(user_id, chat_id, text, lang_hint, username=username, reply_to=reply_to)

    async def on_callback(self, user_id: int, chat_id: int, callback_id: str, data: str | None,
                          lang_hint: str | None, *, in_group: bool = False) -> None:
        """A pressed inline button. Unknown or garbage data gets the menu, never an exception. A button on a
        group message goes to the group commands; one carrying a merchant command to the merchant commands."""
        if not await self._admitted(user_id, chat_id, lang_hint, callback_id):
            return
        if in_group:
            if self.groups is not None:
                await self.groups.on_callback(user_id, chat_id, callback_id, data, lang_hint)
            else:
                await self.port.answer_callback(callback_id)
            return
        # The tap is acknowledged while the answer is made, not before: one round trip less per tap.
        ack = asyncio.ensure_future(self.port.answer_callback(callback_id))
        try:
            if data and data.startswith("/") and self.admin is not None and \
                    await self.admin.handle(user_id, chat_id, data, None, lang_hint):
                return
            ctx = Ctx(buyer_of(user_id), str(chat_id), lang_hint)
            await self.show(chat_id, await self.flow.on_action(ctx, data or ""), user_id)
        finally:
            await ack

    async def show(self, chat_id: int, screens: list[Screen], user_id: int) -> None:
        for screen in screens:
            if screen.invoice is not None:
                await self._invoice(chat_id, screen, user_id)
                continue
            for msg in render(screen):
                await self.port.send(chat_id, msg)

    async def _invoice(self, chat_id: int, screen: Screen, user_id: int) -> None:
        inv = screen.invoice
        assert inv is not None
        lang = inv.get("lang") or await self.language(user_id, None)
        # One message: the invoice says what is held for how long, and carries Pay and the screen's buttons
        # (cancel).
        words = invoice_words(self.i18n, lang, inv["order_id"], inv["title"], inv["qty"], inv["minutes"])
        stars = int(inv["stars"])
        buttons = [[Button(self.i18n.t(lang, "telegram.pay", stars=stars), pay=True)], *render(screen)[0].buttons]
        await self.port.send_invoice(chat_id, words.title, words.description, inv["order_id"], words.label, stars,
                                     buttons)

    async def on_pre_checkout(self, query_id: str, user_id: int, payload: str, total: int, currency: str,
                              lang_hint: str | None) -> None:
        """Answered at once from the core's own decision (reads only): ok only when the payment would be taken."""
        refusal = await self.shop.payable(payload, buyer_of(user_id), total, currency)
        if refusal is None:
            await self.port.answer_pre_checkout(query_id, True)
        else:
            lang = await self.language(user_id, lang_hint)
            await self.port.answer_pre_checkout(query_id, False, errors.words(self.i18n, lang, refusal))

    async def on_successful_payment(self, user_id: int, chat_id: int, payload: str, charge_id: str, total: int,
                                    currency: str) -> None:
        """Hand the payment to the core's one entry (recorded once by its charge id). Polling confirms this
        update only after this returns, so it tries hard: a busy database is waited out; what still fails is
        found by the Stars reconciliation (core/payments.py)."""
        notice = PaymentNotice(payload or None, PROVIDER, charge_id, total, currency, buyer_of(user_id))
        for attempt in range(PAYMENT_ATTEMPTS):
            try:
                result = await self.shop.pay(notice)
                break
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; the reconciliation is the last resort
                log.warning("recording Stars payment for %s failed (attempt %d): %s", payload, attempt + 1,
                            type(exc).__name__)
                if attempt + 1 == PAYMENT_ATTEMPTS:
                    raise
                await asyncio.sleep(min(2.0 ** attempt, 10.0))
        if result.outcome == Outcome.CREDITED and result.topup is not None:
            lang = await self.language(user_id, None)
            await self.port.send(chat_id, OutMessage(html.escape(self.i18n.t(
                lang, "wallet.credited", balance=self.i18n.money(result.balance or 0, result.topup.currency, lang)))))
        elif result.outcome == Outcome.DUPLICATE:
            log.info("successful_payment for %s repeated; nothing to do", payload)


class TelegramNotifier:
    """Deliveries and notices to Telegram buyers (called by the outbox dispatcher)."""

    def __init__(self, flow: CustomerFlow, port: TelegramPort, delete_after: timedelta | None = None,
                 cards: Callable[[Delivery], Awaitable[list[Screen]]] | None = None) -> None:
        self.flow = flow
        self.port = port
        self.delete_after = delete_after  # telegram.delete_code_after: the outbox deletes code messages then
        self.cards = cards  # a reseller's card faces (handlers/cardface.py): protected photos after the codes

    async def deliver(self, recipient: str, delivery: Delivery) -> list[int]:
        """The codes message(s), then the card faces: each message a part of the delivery (numbered in that
        order, the same on a retry), sent once. Returns the ids of all of them, for delete_code_after."""
        chat = int(recipient)
        screen = self.flow.render_delivery(delivery)
        await self.flow.remember(delivery.order.buyer, screen)
        refs: list[int] = []
        for msg in render(screen):
            refs.append(await delivery.parts.send(len(refs), lambda msg=msg: self.port.send(chat, msg)))
        if self.cards is not None and not delivery.again:
            for card in await self.cards(delivery):
                for msg in render(card):
                    refs.append(await delivery.parts.send(len(refs), lambda msg=msg: self.port.send(chat, msg)))
        return refs

    async def delete(self, recipient: str, refs: list[int]) -> None:
        for message_id in refs:
            await self.port.delete(int(recipient), int(message_id))

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        for msg in render(self.flow.render_notice(language, key, params)):
            await self.port.send(int(recipient), msg)


class StarsGateway:
    """Refunds Telegram Stars payments with refundStarPayment (the charge id is the payment's txn id)."""

    name = PROVIDER

    def __init__(self, port: TelegramPort) -> None:
        self.port = port

    async def refund(self, payment: Payment, reason: str) -> bool:
        """Stars go back at once: done when Telegram answers (or says it was done before)."""
        channel, _, user_id = payment.payer.partition(":")
        if channel != CHANNEL or not user_id.lstrip("-").isdigit():
            raise ValueError(f"payment {payment.id} has no Telegram payer to refund")
        await self.port.refund_stars(int(user_id), payment.provider_txn_id)
        return True


def bot_id(settings: Any) -> str:
    """The bot's own id, the token's part before the colon (public: it is the bot's user id): it names the bot's
    shared keys (send limits, update ids, the poller), so two bots on one Redis never mix."""
    return settings.telegram.token.get_secret_value().partition(":")[0] or "bot"
