"""Tests of the test harness: the fake Bot API really works with aiogram and python-telegram-bot."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.filters import CommandStart
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice
from aiogram.types import Message as AiogramMessage
from telegram import InlineKeyboardButton as PtbButton
from telegram import InlineKeyboardMarkup as PtbMarkup
from telegram import Update
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fake_bot_api import FakeBotAPI

TOKEN = "123:ABC"
BUY = {"inline_keyboard": [[{"text": "Buy", "callback_data": "buy:1"}]]}


@pytest.fixture
async def api():
    async with FakeBotAPI(token=TOKEN) as fake:
        yield fake


def aiogram_bot(api: FakeBotAPI) -> Bot:
    return Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base)))


async def test_aiogram_dispatcher_polls_the_fake(api: FakeBotAPI) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: AiogramMessage) -> None:
        await message.answer("hi", reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Buy", callback_data="buy:1")]]))

    @dp.callback_query(F.data == "buy:1")
    async def buy(query: CallbackQuery) -> None:
        await query.answer("ok")

    # handle_as_tasks=False: a confirmed update has been fully handled, so nothing is left pending on stop.
    polling = asyncio.create_task(dp.start_polling(aiogram_bot(api), handle_signals=False,
                                                   handle_as_tasks=False, polling_timeout=5))
    try:
        ann = api.user(42)
        started = api.push_update(api.message_update(ann, "/start"))
        call = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 42)
        assert call.params["text"] == "hi"
        assert call.params["reply_markup"] == BUY  # decoded from its JSON string
        await api.wait_confirmed(started)

        pressed = api.push_update(api.callback_update(ann, "buy:1", api.last_message(42)))
        answer = await api.wait_for("answerCallbackQuery")
        assert answer.params["callback_query_id"] == pressed["callback_query"]["id"]
        await api.wait_confirmed(pressed)

        # Group chat: privacy mode delivers /start@botname; aiogram checks the mention against getMe.
        group = api.group_chat(-1001, "Shop fans")
        in_group = api.push_update(api.message_update(ann, "/start@test_shop_bot", chat=group))
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == -1001)
        await api.wait_confirmed(in_group)
        assert api.last_message(-1001)["chat"]["type"] == "supergroup"
    finally:
        if not polling.done():
            await dp.stop_polling()
        await polling  # also closes the bot session


async def test_ptb_application_polls_the_fake(api: FakeBotAPI) -> None:
    errors: list[BaseException] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(
            "hi", reply_markup=PtbMarkup([[PtbButton("Buy", callback_data="buy:1")]]))

    async def buy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("ok")

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(context.error)  # PTB would only log handler exceptions otherwise

    app = (ApplicationBuilder().token(api.token)
           .base_url(f"{api.base}/bot").base_file_url(f"{api.base}/file/bot").build())
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(buy, pattern="^buy:"))
    app.add_error_handler(on_error)
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0)
        try:
            ann = api.user(43, first_name="Bo")
            api.push_update(api.message_update(ann, "/start"))
            call = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 43)
            assert call.params["text"] == "hi" and call.params["reply_markup"] == BUY

            api.push_update(api.callback_update(ann, "buy:1", api.last_message(43)))
            answer = await api.wait_for("answerCallbackQuery")
            assert answer.params["text"] == "ok"
        finally:
            await app.updater.stop()
            await app.stop()
    assert errors == []
    assert api.calls("deleteWebhook")  # PTB's polling bootstrap


async def test_send_invoice_in_stars(api: FakeBotAPI) -> None:
    async with aiogram_bot(api) as bot:
        message = await bot.send_invoice(chat_id=42, title="Game card", description="10 credits",
                                          payload="order:1", currency="XTR",
                                          prices=[LabeledPrice(label="Game card", amount=70)])
    call = api.calls("sendInvoice")[0]
    assert call.params["prices"] == [{"label": "Game card", "amount": 70}]
    assert call.params["currency"] == "XTR" and call.params["chat_id"] == 42
    assert "provider_token" not in call.params
    assert message.invoice.total_amount == 70 and message.invoice.currency == "XTR"


async def test_injected_429_and_blocked_chat(api: FakeBotAPI) -> None:
    api.fail_next("sendMessage", retry_after=3)
    api.block_chat(99)
    async with aiogram_bot(api) as bot:
        with pytest.raises(TelegramRetryAfter) as exc_info:
            await bot.send_message(42, "first")
        assert exc_info.value.retry_after == 3
        assert (await bot.send_message(42, "second")).text == "second"  # only the next call failed
        with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
            await bot.send_message(99, "hello?")
    assert [c.status for c in api.calls("sendMessage")] == [429, 200, 403]
    assert [m["text"] for m in api.sent_to(42)] == ["second"]


async def test_file_upload_and_download(api: FakeBotAPI) -> None:
    doc = api.register_file(b"CODE-1234\n", "codes.txt")
    async with aiogram_bot(api) as bot:
        assert (await bot.download(doc["file_id"])).read() == b"CODE-1234\n"
        sent = await bot.send_document(42, BufferedInputFile(b"A-B-C", filename="order-1.txt"), caption="Your codes")
        assert (await bot.download(sent.document)).read() == b"A-B-C"
    call = api.calls("sendDocument")[0]
    assert call.files["document"] == ("order-1.txt", b"A-B-C")  # aiogram's attach://<part> resolved
    assert sent.document.file_name == "order-1.txt" and sent.caption == "Your codes"


async def test_raw_http_errors_and_offsets(api: FakeBotAPI) -> None:
    first = api.push_update(api.message_update(api.user(42), "one"))
    api.push_update(api.message_update(api.user(42), "two"))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.base}/bot999:WRONG/getMe") as resp:
            assert resp.status == 401 and (await resp.json())["description"] == "Unauthorized"
        async with http.post(f"{api.base}/bot{TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404 and (await resp.json())["error_code"] == 404
        async with http.post(f"{api.base}/bot{TOKEN}/getUpdates", data={"offset": str(first["update_id"] + 1)}) as r:
            assert [u["message"]["text"] for u in (await r.json())["result"]] == ["two"]
