"""The python-telegram-bot (PTB 22) adapter: handlers any PTB Application can add, and a Bot API port over
PTB's Bot. python-telegram-bot is LGPL-3.0 (used unmodified, as a dependency).

Mount the store in your own PTB bot:

    frontend = storefront(settings, app.shop, PtbPort(application.bot))
    app.plug(frontend.parts)                             # the shop sends and refunds through this bot
    application.add_handlers(store_handlers(frontend))   # after your own handlers: the first match wins

Note: PTB only logs handler exceptions unless an error handler is registered; `PtbRuntime` registers one that
logs the exception type (never the update: it may hold codes).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    LabeledPrice,
    MenuButtonWebApp,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    WebAppInfo,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from bots.telegram.common import (
    GROUP_TYPES,
    Button,
    Document,
    LibraryPort,
    OutMessage,
    TelegramFrontend,
    bot_id,
    stop_sending,
)
from bots.telegram.face import Face, FaceTask, apply_face, bot_face
from bots.telegram.polling import PaymentFirstPolling, PollerLease, handled
from bots.telegram.ptb_request import AiohttpRequest
from bots.telegram.wiring import storefront
from core.shop import Shop

log = logging.getLogger(__name__)

POLL_TIMEOUT = dt.timedelta(seconds=10)


def _button(b: Button) -> InlineKeyboardButton:
    if b.pay:
        return InlineKeyboardButton(b.text, pay=True)
    if b.copy_text is not None:
        return InlineKeyboardButton(b.text, copy_text=CopyTextButton(b.copy_text))
    if b.web_app is not None:
        return InlineKeyboardButton(b.text, web_app=WebAppInfo(b.web_app))
    return InlineKeyboardButton(b.text, callback_data=b.callback_data)


def _markup(msg: OutMessage) -> InlineKeyboardMarkup | None:
    if not msg.buttons:
        return None
    return InlineKeyboardMarkup([[_button(b) for b in row] for row in msg.buttons])


class PtbPort(LibraryPort):
    """TelegramPort over python-telegram-bot's Bot (or an Application's ExtBot)."""

    def _markup(self, buttons: list[list[Button]]) -> InlineKeyboardMarkup | None:
        return _markup(OutMessage("", buttons))

    def _file(self, data: bytes, name: str) -> InputFile:
        return InputFile(data, filename=name)

    def _reply_keyboard(self, contact_label: str | None) -> ReplyKeyboardMarkup | ReplyKeyboardRemove:
        if contact_label is None:
            return ReplyKeyboardRemove()
        return ReplyKeyboardMarkup([[KeyboardButton(contact_label, request_contact=True)]], resize_keyboard=True,
                                   one_time_keyboard=True)

    def _price(self, label: str, stars: int) -> LabeledPrice:
        return LabeledPrice(label, stars)

    def _commands(self, commands: list[tuple[str, str]]) -> list[BotCommand]:
        return [BotCommand(name, text) for name, text in commands]

    def _chat_scope(self, chat_id: int) -> BotCommandScopeChat:
        return BotCommandScopeChat(chat_id)

    def _menu_button(self, text: str, url: str) -> MenuButtonWebApp:
        return MenuButtonWebApp(text, WebAppInfo(url))

    async def download(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())


# Only new `message` updates, like aiogram's router.message (PTB's message filters also match edits,
# channel posts and business messages through effective_message).
_NEW_MESSAGE = filters.UpdateType.MESSAGE
_PRIVATE = _NEW_MESSAGE & filters.ChatType.PRIVATE
_GROUP = _NEW_MESSAGE & filters.ChatType.GROUPS


def store_handlers(frontend: TelegramFrontend) -> list[BaseHandler[Any, Any, Any]]:
    """The storefront's handlers, the same routing as aiogram's `store_router`; each one line into the
    channel-neutral frontend. Add them after your own handlers in the same group (the first match wins)."""

    async def paid(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None and message.successful_payment is not None and message.from_user is not None
        sp = message.successful_payment
        await frontend.on_successful_payment(message.from_user.id, message.chat.id, sp.invoice_payload,
                                             sp.telegram_payment_charge_id, sp.total_amount, sp.currency)

    async def pre_checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.pre_checkout_query
        assert query is not None
        await frontend.on_pre_checkout(query.id, query.from_user.id, query.invoice_payload, query.total_amount,
                                       query.currency, query.from_user.language_code)

    async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None and message.from_user is not None and message.text is not None
        await frontend.on_text(message.from_user.id, message.chat.id, message.text, message.from_user.language_code)

    async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None and message.from_user is not None and message.document is not None
        doc = Document(message.document.file_id, message.document.file_name or "", message.document.file_size)
        await frontend.on_text(message.from_user.id, message.chat.id, message.caption or "",
                               message.from_user.language_code, doc)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        # query.message may be an InaccessibleMessage (date 0); it still has its chat.
        chat = query.message.chat if query.message is not None else None
        in_group = chat is not None and chat.type in GROUP_TYPES
        await frontend.on_callback(query.from_user.id, chat.id if chat else query.from_user.id, query.id, query.data,
                                   query.from_user.language_code, in_group=in_group)

    async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None and message.from_user is not None and message.contact is not None
        await frontend.on_contact(message.from_user.id, message.chat.id, message.contact.user_id,
                                  message.contact.phone_number, message.from_user.language_code)

    async def group(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or message.text is None:
            return  # an anonymous admin or a channel posting in the group: nobody to sell to
        replied = message.reply_to_message.from_user if message.reply_to_message is not None else None
        await frontend.on_group_text(message.from_user.id, message.chat.id, message.text,
                                     message.from_user.language_code, username=message.from_user.username,
                                     reply_to=replied.id if replied is not None and not replied.is_bot else None)

    return [
        MessageHandler(_NEW_MESSAGE & filters.SUCCESSFUL_PAYMENT, paid),
        PreCheckoutQueryHandler(pre_checkout),
        MessageHandler(_PRIVATE & filters.TEXT, text),  # commands included
        MessageHandler(_PRIVATE & filters.Document.ALL, document),
        MessageHandler(_PRIVATE & filters.CONTACT, contact),
        MessageHandler(_GROUP & filters.COMMAND, group),
        CallbackQueryHandler(button),
    ]


async def log_handler_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """PTB's error handler: the exception type and the update id only (messages and updates may hold codes)."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("Telegram update %s failed: %s", update_id, type(context.error).__name__)


def build_application(token: str, api_base: str, *, concurrent_updates: bool = True) -> Application:
    """PTB's Application on the store's transport (bots/telegram/ptb_request.py: aiohttp, not httpx); long polling
    has its own small pool, so a getUpdates waiting for 50 s never takes a connection a reply needs."""
    base = api_base.rstrip("/")
    return (ApplicationBuilder().token(token)
            .base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
            .request(AiohttpRequest(256))
            .get_updates_request(AiohttpRequest(2, read_timeout=POLL_TIMEOUT.total_seconds() + 10))
            .concurrent_updates(concurrent_updates)
            .build())


def is_payment_update(update: Update) -> bool:
    """A payment that must be recorded before Telegram is told the update arrived (bots/telegram/polling.py)."""
    return update.message is not None and update.message.successful_payment is not None


class PtbRuntime:
    """The store as its own PTB bot (an Application with the store handlers)."""

    def __init__(self, settings: Any, shop: Shop, *, concurrent_updates: bool = True) -> None:
        tg = settings.telegram
        self.application = build_application(tg.token.get_secret_value(), tg.api_base,
                                              concurrent_updates=concurrent_updates)
        self.bot = self.application.bot
        self.settings = settings
        self.shop = shop
        self.port = PtbPort(self.bot)
        self.frontend = storefront(settings, shop, self.port)
        self.application.add_handlers(store_handlers(self.frontend))
        self.application.add_error_handler(log_handler_error)
        self._concurrent = concurrent_updates
        self._polling: PaymentFirstPolling[Update] | None = None
        self._lease: PollerLease | None = None  # this process's claim to poll the bot (polling.py)
        self.face = FaceTask()  # the bot's commands and descriptions, set in the background at start (face.py)

    async def _ensure_initialized(self) -> None:
        await self.application.initialize()  # a no-op when already initialized

    async def start(self) -> None:
        """Long polling in the background (returns once PTB has deleted any webhook and started polling). Refused
        (ConfigError) when another store process polls this bot."""
        self._lease = PollerLease(self.shop.shared, bot_id(self.settings))
        await self._lease.take()
        await self._ensure_initialized()
        self.face.start(self.port, self.settings, self.shop, self.frontend.i18n)
        await self.application.start()
        await self.bot.delete_webhook(drop_pending_updates=False)  # as PTB's own start_polling does
        self._polling = PaymentFirstPolling(
            lambda offset, timeout: self.bot.get_updates(offset=offset, timeout=timeout),
            lambda update: handled(self.shop, "polling", update.update_id, self.application.process_update(update)),
            lambda update: update.update_id, is_payment_update,
            timeout=int(POLL_TIMEOUT.total_seconds()), concurrent=self._concurrent)
        self._polling.start()

    async def set_webhook(self, url: str, secret: str) -> None:
        await self._ensure_initialized()
        self.face.start(self.port, self.settings, self.shop, self.frontend.i18n)
        await self.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)

    async def feed_webhook(self, update: dict[str, Any]) -> None:
        """Process one update now. Handler exceptions go to the error handler (logged), as in polling."""
        await self._ensure_initialized()
        parsed = Update.de_json(update, self.bot)
        await handled(self.shop, "webhook", parsed.update_id, self.application.process_update(parsed))

    async def set_face(self) -> Face:
        """The face set now (`run.py telegram setup`); Telegram's refusal is raised."""
        await self._ensure_initialized()
        face = await bot_face(self.settings, self.shop, self.frontend.i18n)
        await apply_face(self.port, face)
        return face

    async def stop(self) -> None:
        await self.face.stop()
        if self._polling is not None:
            await self._polling.stop()
            self._polling = None
        if self._lease is not None:
            await self._lease.release()
            self._lease = None
        if self.application.running:
            await self.application.stop()
        await stop_sending(self.shop.dispatcher, self.port)
        await self.application.shutdown()  # a no-op when never initialized
