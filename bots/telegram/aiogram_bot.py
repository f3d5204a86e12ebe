"""The aiogram 3 adapter: a Router any aiogram bot can include, and a Bot API port over aiogram's Bot.

Mount the store in your own aiogram bot:

    frontend = TelegramFrontend(shop, flow, AiogramPort(bot), i18n)
    dp.include_router(store_router(frontend))
"""
from __future__ import annotations

import functools
from typing import Any, cast

from aiogram import Bot, Dispatcher, Router, methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LabeledPrice,
    MenuButtonWebApp,
    Message,
    PreCheckoutQuery,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    WebAppInfo,
)
from aiohttp import ClientError

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
from bots.telegram.wiring import storefront
from core.shop import Shop


def _keep_response_models() -> list[type]:
    """aiogram parses every answer as `Response[<method's return type>]`, a pydantic generic that pydantic
    caches only weakly: it was rebuilt again and again under load (a fifth of the CPU in bench/telegram_e2e.py).
    Holding the ones the store uses keeps them cached."""
    used = ("SendMessage", "SendInvoice", "SendDocument", "SendPhoto", "EditMessageText", "DeleteMessage",
            "AnswerCallbackQuery", "AnswerPreCheckoutQuery", "RefundStarPayment", "GetFile", "GetUpdates", "GetMe",
            "SetWebhook", "DeleteWebhook", "SetMyCommands", "SetMyDescription", "SetMyShortDescription",
            "CreateInvoiceLink", "SetChatMenuButton")
    return [Response[getattr(methods, name).__returning__] for name in used]  # type: ignore[name-defined]


_RESPONSE_MODELS = _keep_response_models()


class JsonSession(AiohttpSession):
    """aiogram's aiohttp session, sending calls without files as one JSON body (the Bot API takes
    application/json). aiogram's own path builds an aiohttp FormData for every call, with a multipart
    writer and a fresh uuid, then url-encodes it: about a tenth of the store's CPU per purchase.
    Calls with files (documents) take aiogram's multipart path unchanged."""

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:
        files: dict[str, Any] = {}
        payload = {}
        for key, value in method.model_dump(warnings=False).items():
            value = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if value is None or value == "":
                continue  # what aiogram's form leaves out too
            payload[key] = value
        if files:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(url, data=self.json_dumps(payload), headers=_JSON,
                                    timeout=self.timeout if timeout is None else timeout) as resp:
                raw = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(bot=bot, method=method, status_code=resp.status, content=raw)
        return cast(TelegramType, response.result)

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        """Successful answers are parsed straight from JSON text by pydantic-core (no dict in between);
        anything else takes aiogram's path, which maps errors to its exceptions."""
        if status_code == 200:
            try:
                response = Response[method.__returning__].model_validate_json(  # type: ignore[name-defined]
                    content, context={"bot": bot})
            except ValueError:
                pass
            else:
                if response.ok:
                    return response
        return super().check_response(bot=bot, method=method, status_code=status_code, content=content)


_JSON = {"Content-Type": "application/json"}


def make_bot(token: str, api_base: str) -> Bot:
    session = JsonSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    return Bot(token=token, session=session)


def _button(b: Button) -> InlineKeyboardButton:
    if b.pay:
        return InlineKeyboardButton(text=b.text, pay=True)
    if b.copy_text is not None:
        return InlineKeyboardButton(text=b.text, copy_text=CopyTextButton(text=b.copy_text))
    if b.web_app is not None:
        return InlineKeyboardButton(text=b.text, web_app=WebAppInfo(url=b.web_app))
    return InlineKeyboardButton(text=b.text, callback_data=b.callback_data)


def _markup(msg: OutMessage) -> InlineKeyboardMarkup | None:
    if not msg.buttons:
        return None
    if any(b.copy_text is not None for row in msg.buttons for b in row):
        return _build_markup(msg.buttons)  # copy buttons carry codes: never kept in a cache
    return _cached_markup(tuple(tuple((b.text, b.callback_data, b.pay, b.web_app) for b in row)
                                for row in msg.buttons))


def _build_markup(buttons: list[list[Button]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(b) for b in row] for row in buttons])


@functools.lru_cache(maxsize=2048)
def _cached_markup(key: tuple[tuple[tuple[str, str | None, bool, str | None], ...], ...]) -> InlineKeyboardMarkup:
    """Menus and product pages are the same for every customer: their pydantic keyboards are built once."""
    return _build_markup([[Button(text, data, pay=pay, web_app=web_app) for text, data, pay, web_app in row]
                          for row in key])


class AiogramPort(LibraryPort):
    def _markup(self, buttons: list[list[Button]]) -> InlineKeyboardMarkup | None:
        return _markup(OutMessage("", buttons))

    def _file(self, data: bytes, name: str) -> BufferedInputFile:
        return BufferedInputFile(data, filename=name)

    def _reply_keyboard(self, contact_label: str | None) -> ReplyKeyboardMarkup | ReplyKeyboardRemove:
        if contact_label is None:
            return ReplyKeyboardRemove(remove_keyboard=True)
        return ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text=contact_label, request_contact=True)]],
                                   resize_keyboard=True, one_time_keyboard=True)

    def _price(self, label: str, stars: int) -> LabeledPrice:
        return LabeledPrice(label=label, amount=stars)

    def _commands(self, commands: list[tuple[str, str]]) -> list[BotCommand]:
        return [BotCommand(command=name, description=text) for name, text in commands]

    def _chat_scope(self, chat_id: int) -> BotCommandScopeChat:
        return BotCommandScopeChat(chat_id=chat_id)

    def _menu_button(self, text: str, url: str) -> MenuButtonWebApp:
        return MenuButtonWebApp(text=text, web_app=WebAppInfo(url=url))

    async def download(self, file_id: str) -> bytes:
        buffer = await self.bot.download(file_id)
        assert buffer is not None
        return buffer.getvalue()


def store_router(frontend: TelegramFrontend) -> Router:
    """The storefront's handlers: each one line into the channel-neutral frontend."""
    router = Router(name="card-store")

    # Filters are coroutines on purpose: aiogram runs a plain callable filter (a magic F filter too) in a
    # worker thread, a thread hop per filter per update.
    async def has_payment(message: Message) -> bool:
        return message.successful_payment is not None

    async def private_text(message: Message) -> bool:
        return message.chat.type == "private" and message.text is not None

    async def private_document(message: Message) -> bool:
        return message.chat.type == "private" and message.document is not None

    async def private_contact(message: Message) -> bool:
        return message.chat.type == "private" and message.contact is not None

    async def group_command(message: Message) -> bool:
        return message.chat.type in GROUP_TYPES and (message.text or "").startswith("/")

    @router.message(has_payment)
    async def paid(message: Message) -> None:
        sp = message.successful_payment
        assert sp is not None and message.from_user is not None
        await frontend.on_successful_payment(message.from_user.id, message.chat.id, sp.invoice_payload,
                                             sp.telegram_payment_charge_id, sp.total_amount, sp.currency)

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        await frontend.on_pre_checkout(query.id, query.from_user.id, query.invoice_payload, query.total_amount,
                                       query.currency, query.from_user.language_code)

    @router.message(private_text)
    async def text(message: Message) -> None:
        assert message.from_user is not None and message.text is not None
        await frontend.on_text(message.from_user.id, message.chat.id, message.text, message.from_user.language_code)

    @router.message(private_document)
    async def document(message: Message) -> None:
        assert message.from_user is not None and message.document is not None
        doc = Document(message.document.file_id, message.document.file_name or "", message.document.file_size)
        await frontend.on_text(message.from_user.id, message.chat.id, message.caption or "",
                               message.from_user.language_code, doc)

    @router.message(private_contact)
    async def contact(message: Message) -> None:
        assert message.from_user is not None and message.contact is not None
        await frontend.on_contact(message.from_user.id, message.chat.id, message.contact.user_id,
                                  message.contact.phone_number, message.from_user.language_code)

    @router.message(group_command)
    async def group(message: Message) -> None:
        if message.from_user is None or message.text is None:
            return  # an anonymous admin or a channel posting in the group: nobody to sell to
        replied = message.reply_to_message.from_user if message.reply_to_message is not None else None
        await frontend.on_group_text(message.from_user.id, message.chat.id, message.text,
                                     message.from_user.language_code, username=message.from_user.username,
                                     reply_to=replied.id if replied is not None and not replied.is_bot else None)

    @router.callback_query()
    async def button(query: CallbackQuery) -> None:
        chat = query.message.chat if query.message is not None else None
        in_group = chat is not None and chat.type in GROUP_TYPES
        await frontend.on_callback(query.from_user.id, chat.id if chat else query.from_user.id, query.id, query.data,
                                   query.from_user.language_code, in_group=in_group)

    return router


def is_payment_update(update: Update) -> bool:
    """A payment that must be recorded before Telegram is told the update arrived (bots/telegram/polling.py)."""
    return update.message is not None and update.message.successful_payment is not None


class AiogramRuntime:
    """The store as its own aiogram bot (Bot + Dispatcher with the store router)."""

    def __init__(self, settings: Any, shop: Shop, *, concurrent_updates: bool = True) -> None:
        tg = settings.telegram
        self.bot = make_bot(tg.token.get_secret_value(), tg.api_base)
        self.settings = settings
        self.shop = shop
        self.port = AiogramPort(self.bot)
        self.frontend = storefront(settings, shop, self.port)
        self.dp = Dispatcher(disable_fsm=True)  # the store keeps conversation state in its database
        self.dp.include_router(store_router(self.frontend))
        self._concurrent = concurrent_updates
        self._polling: PaymentFirstPolling[Update] | None = None
        self._lease: PollerLease | None = None  # this process's claim to poll the bot (polling.py)
        self.face = FaceTask()  # the bot's commands and descriptions, set in the background at start (face.py)

    async def start(self) -> None:
        """Long polling in the background; a payment update is confirmed only once handled (polling.py). Refused
        (ConfigError) when another store process polls this bot."""
        self._lease = PollerLease(self.shop.shared, bot_id(self.settings))
        await self._lease.take()
        self.face.start(self.port, self.settings, self.shop, self.frontend.i18n)
        self._polling = PaymentFirstPolling(
            lambda offset, timeout: self.bot.get_updates(offset=offset, timeout=timeout,
                                                         request_timeout=timeout + 30),
            lambda update: handled(self.shop, "polling", update.update_id, self.dp.feed_update(self.bot, update)),
            lambda update: update.update_id, is_payment_update, timeout=10, concurrent=self._concurrent)
        self._polling.start()

    async def set_webhook(self, url: str, secret: str) -> None:
        self.face.start(self.port, self.settings, self.shop, self.frontend.i18n)
        await self.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)

    async def feed_webhook(self, update: dict[str, Any]) -> None:
        parsed = Update.model_validate(update, context={"bot": self.bot})
        await handled(self.shop, "webhook", parsed.update_id, self.dp.feed_update(self.bot, parsed))

    async def set_face(self) -> Face:
        """The face set now (`run.py telegram setup`); Telegram's refusal is raised."""
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
        await stop_sending(self.shop.dispatcher, self.port)
        await self.bot.session.close()
