"""The Telegram storefront end to end: real aiogram or python-telegram-bot polling a local fake Bot API, a real
SQLite store. Every scenario runs once per library."""
from __future__ import annotations

import asyncio
import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aiogram.types import Update as AiogramUpdate
from telegram import Update as PtbUpdate

from app import App
from bots.telegram.aiogram_bot import AiogramPort, make_bot
from bots.telegram.common import Button, OutMessage, buyer_of
from bots.telegram.ptb_bot import PtbPort, build_application
from core.clock import FakeClock
from core.supply import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront, buttons, data_of, store_settings

ROOT = Path(__file__).resolve().parents[1]


async def browse_to_product(shop: Shopfront, user: dict) -> object:
    api = shop.api
    chat = user["id"]
    mark = api.mark()
    await shop.send(api.message_update(user, "/start"))
    menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == chat, since=mark)
    mark = api.mark()
    await shop.send(api.callback_update(user, data_of(menu, buttons(menu)[0]["text"]), api.last_message(chat)))
    listing = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == chat, since=mark)
    mark = api.mark()
    await shop.send(api.callback_update(user, buttons(listing)[0]["callback_data"], api.last_message(chat)))
    return await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == chat, since=mark)


async def buy(shop: Shopfront, user: dict, page) -> tuple[dict, object]:
    api, chat = shop.api, user["id"]
    mark = api.mark()
    buy_label = next(b["text"] for b in buttons(page) if b.get("callback_data", "").startswith("buy:"))
    await shop.send(api.callback_update(user, data_of(page, buy_label), api.last_message(chat)))
    invoice = await api.wait_for("sendInvoice", lambda c: c.params["chat_id"] == chat, since=mark)
    return invoice.params, invoice


async def test_given_a_customer_when_they_buy_with_stars_then_the_code_arrives_protected_in_a_spoiler_once(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(3)
        ann = api.user(501, "Ann", "en")
        page = await browse_to_product(shop, ann)
        assert "Game card" in page.params["text"] and "70 Stars" in page.params["text"]
        assert "Only 3 left" in page.params["text"]
        assert buttons(page)[0]["text"] == "Buy"

        invoice, _ = await buy(shop, ann, page)
        assert invoice["currency"] == "XTR" and "provider_token" not in invoice
        assert [p["amount"] for p in invoice["prices"]] == [70]
        order_id = invoice["payload"]

        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 70))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is True

        mark = api.mark()
        paid = api.successful_payment_update(ann, order_id, 70, "charge-1")
        await shop.send(paid)
        delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
        assert delivery.params["chat_id"] == 501 and delivery.params["protect_content"] is True
        assert f"<tg-spoiler><code>{codes[0]}</code></tg-spoiler>" in delivery.params["text"]
        assert [b["copy_text"]["text"] for b in buttons(delivery) if "copy_text" in b] == [codes[0]]

        # Telegram sends the same successful_payment again (a retry): nothing more is delivered.
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-1"))
        await asyncio.sleep(0.3)
        assert not [c for c in api.calls_since(mark, "sendMessage") if "tg-spoiler" in c.params.get("text", "")]
        assert api.calls("refundStarPayment") == []


async def test_given_a_chinese_client_then_the_shop_speaks_chinese_and_the_button_reads_goumai(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(1)
        li = api.user(502, "Li", "zh-hans")
        page = await browse_to_product(shop, li)
        assert "游戏点卡" in page.params["text"] and buttons(page)[0]["text"] == "购买"


async def test_given_someone_elses_invoice_when_they_pay_then_it_is_refused_or_refunded_and_nothing_is_sent(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        ann, mallory = api.user(503, "Ann"), api.user(666, "Mallory")
        invoice, _ = await buy(shop, ann, await browse_to_product(shop, ann))
        order_id = invoice["payload"]

        mark = api.mark()
        await shop.send(api.pre_checkout_update(mallory, order_id, 70))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is False and "someone else" in answer.params["error_message"]

        # The payment went through anyway (a forwarded invoice): Mallory's Stars go back, nobody gets codes.
        mark = api.mark()
        await shop.send(api.successful_payment_update(mallory, order_id, 70, "charge-m"))
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params == {"user_id": 666, "telegram_payment_charge_id": "charge-m"}
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 666, since=mark)
        assert "refunded" in told.params["text"]
        assert not [c for c in api.calls("sendMessage") if "tg-spoiler" in c.params.get("text", "")]


async def test_given_a_lapsed_hold_and_no_stock_when_paid_then_the_stars_are_refunded_and_the_buyer_told(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    clock = FakeClock()
    async with Shopfront(api, tmp_path, clock, library=library) as shop:
        await shop.stock(1)
        ann, bob = api.user(504, "Ann"), api.user(505, "Bob")
        invoice, _ = await buy(shop, ann, await browse_to_product(shop, ann))

        mark = api.mark()
        clock.advance(minutes=16)
        await shop.app.shop.expire_holds()
        await shop.send(api.pre_checkout_update(ann, invoice["payload"], 70))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is False and "lapsed" in answer.params["error_message"]

        await buy(shop, bob, await browse_to_product(shop, bob))  # Bob takes the last code
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, invoice["payload"], 70, "charge-late"))
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params["user_id"] == 504
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 504, since=mark)
        assert "stock ran out" in told.params["text"]


async def test_given_a_product_without_a_stars_price_then_telegram_offers_no_buy_and_holds_nothing(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await import_codes(shop.app.db.uow, shop.app.vault, shop.app.clock, "NOSTARS", [b"WEB-1\n"])
        ann = api.user(506)
        product = await shop.app.shop.product_by_sku("NOSTARS")
        here = {"message_id": 1, "chat": {"id": 506, "type": "private"}, "date": 0}
        mark = api.mark()
        await shop.send(api.callback_update(ann, f"p:{product.id}", here))
        page = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 506, since=mark)
        assert "cannot be paid with Telegram Stars" in page.params["text"]
        assert not [b for b in buttons(page) if b.get("callback_data", "").startswith("buy:")]
        mark = api.mark()
        await shop.send(api.callback_update(ann, f"buy:{product.id}:1", here))  # an old or forged button
        refused = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 506, since=mark)
        assert "not on sale" in refused.params["text"]
        assert api.calls("sendInvoice") == [] and await shop.app.shop.my_orders(buyer_of(506)) == []


@pytest.mark.parametrize("data", ["", "zzz", "p:abc", "buy:1:999999999999", "x" * 64, "k:" + "A" * 20])
async def test_given_garbage_callback_data_then_the_buyer_gets_the_menu(api: FakeBotAPI, tmp_path: Path,
                                                                        data: str, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        ann = api.user(507)
        mark = api.mark()
        await shop.send(api.callback_update(ann, data, {"message_id": 1, "chat": {"id": 507, "type": "private"},
                                                        "date": 0}))
        await api.wait_for("answerCallbackQuery", since=mark)
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 507 and "reply_markup" in c.params,
                                  since=mark)
        assert "Catalogue" in str(menu.params["reply_markup"])
        assert all(len(b["callback_data"].encode()) <= 64 for b in buttons(menu))


async def test_paysupport_answers_with_the_support_contact(api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        ann = api.user(508)
        mark = api.mark()
        await shop.send(api.message_update(ann, "/paysupport"))
        msg = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 508, since=mark)
        assert "@help" in msg.params["text"] and "refunded automatically" in msg.params["text"]


async def test_given_a_non_admin_when_they_send_codes_with_an_import_caption_then_nothing_is_imported(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, admins=[1]) as shop:
        await shop.stock(2)
        before = [(s.sku, s.available) for s in await shop.app.shop.stock()]
        mallory = api.user(509, "Mallory")
        doc = api.register_file(b"FAKE-0001\nFAKE-0002\n", "codes.txt")
        mark = api.mark()
        await shop.send(api.message_update(mallory, document=doc, caption="/import GAME"))
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 509, since=mark)
        assert [(s.sku, s.available) for s in await shop.app.shop.stock()] == before


# -- the Bot API port of each library ----------------------------------------------------------------
def make_port(library: str, api: FakeBotAPI):
    if library == "aiogram":
        return AiogramPort(make_bot(api.token, api.base))
    return PtbPort(build_application(api.token, api.base).bot)


async def test_each_port_sends_edits_deletes_documents_and_downloads(api: FakeBotAPI, library: str) -> None:
    port = make_port(library, api)
    bot = port.bot
    if library == "ptb":
        await bot.initialize()
    try:
        api.user(510)
        mid = await port.send(510, OutMessage("<b>Hi</b>", [[Button("Menu", callback_data="m")]]))
        plain = api.calls("sendMessage")[-1].params
        assert plain["parse_mode"] == "HTML" and "protect_content" not in plain
        await port.edit(510, mid, OutMessage("Bye", [[Button("📋", copy_text="CODE-1")]]))
        edited = api.calls("editMessageText")[-1].params
        assert edited["reply_markup"]["inline_keyboard"][0][0]["copy_text"] == {"text": "CODE-1"}
        await port.delete(510, mid)
        assert api.is_deleted(510, mid)

        await port.send(510, OutMessage("codes", protect=True, document=("codes.txt", b"A\nB\n")))
        sent = api.calls("sendDocument")[-1]
        assert sent.files["document"] == ("codes.txt", b"A\nB\n") and sent.params["protect_content"] is True

        doc = api.register_file(b"X-1\nX-2\n", "in.txt")
        assert await port.download(doc["file_id"]) == b"X-1\nX-2\n"

        await port.answer_pre_checkout("pcq1", False, "no")
        assert api.calls("answerPreCheckoutQuery")[-1].params == {"pre_checkout_query_id": "pcq1", "ok": False,
                                                                   "error_message": "no"}
        api.successful_payment_update(api.user(510), "order-1", 70, "charge-x")
        await port.refund_stars(510, "charge-x")
        assert api.calls("refundStarPayment")[-1].status == 200
    finally:
        if library == "ptb":
            await bot.shutdown()
        else:
            await bot.session.close()


# -- examples/: mounting the store in a merchant's own bot -------------------------------------------
def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("example", ["mount_aiogram", "mount_ptb"])
async def test_an_example_mounts_the_store_next_to_the_merchants_own_handlers(api: FakeBotAPI, tmp_path: Path,
                                                                           example: str) -> None:
    module = load_example(example)
    settings = store_settings(api, tmp_path)
    ann = api.user(511)
    update_ids = itertools.count(1)
    async with await App.open(settings) as app:
        built = module.build(settings, app)
        if example == "mount_aiogram":
            bot, dp = built

            async def feed(update: dict) -> None:
                await dp.feed_update(bot, AiogramUpdate.model_validate({**update, "update_id": next(update_ids)},
                                                                          context={"bot": bot}))
        else:
            application = built
            errors: list[BaseException] = []

            async def record(update: object, context) -> None:
                errors.append(context.error)

            application.add_error_handler(record)
            await application.initialize()

            async def feed(update: dict) -> None:
                await application.process_update(PtbUpdate.de_json({**update, "update_id": next(update_ids)},
                                                                             application.bot))
        try:
            mark = api.mark()
            await feed(api.message_update(ann, "/hello"))
            sent = [c.params["text"] for c in api.calls()[mark:] if c.method == "sendMessage"]
            assert sent == ["Hello from my own bot!"]

            mark = api.mark()
            await feed(api.message_update(ann, "/start"))
            menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 511, since=mark)
            assert "Catalogue" in str(menu.params["reply_markup"])
        finally:
            if example == "mount_aiogram":
                await bot.session.close()
            else:
                await application.shutdown()
                assert errors == []


async def test_webhook_mode_processes_one_update_without_polling(api: FakeBotAPI, tmp_path: Path,
                                                                 library: str) -> None:
    settings = store_settings(api, tmp_path, library=library)
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        try:
            await runtime.set_webhook("https://shop.example/tg", "s3cret")
            assert api.webhook == {"url": "https://shop.example/tg", "secret_token": "s3cret"}
            mark = api.mark()
            await runtime.feed_webhook({"update_id": 1, **api.message_update(api.user(512), "/start")})
            menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 512, since=mark, timeout=1)
            assert "Catalogue" in str(menu.params["reply_markup"])
            assert not api.calls("getUpdates")
        finally:
            await runtime.stop()


async def test_ptb_handler_errors_are_logged_by_type_only(api: FakeBotAPI, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    settings = store_settings(api, tmp_path, library="ptb")
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        try:
            api.fail_next("sendMessage", 400, description="Bad Request: SECRET-CODE-77 rejected")
            with caplog.at_level("DEBUG"):
                await runtime.feed_webhook({"update_id": 7, **api.message_update(api.user(513, "K-SECRET"), "/start")})
        finally:
            await runtime.stop()
    errors = [r for r in caplog.records if r.name == "bots.telegram.ptb_bot"]
    assert [r.getMessage() for r in errors] == ["Telegram update 7 failed: BadRequest"]
    assert errors[0].exc_info is None
    assert "SECRET" not in caplog.text


async def test_given_a_buy_then_one_invoice_message_says_what_is_held_and_its_cancel_button_releases_the_stock(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(1)
        ann = api.user(520, "Ann", "en")
        page = await browse_to_product(shop, ann)
        mark = api.mark()
        invoice, call = await buy(shop, ann, page)
        order_id = invoice["payload"]
        assert order_id in invoice["description"] and "15 min" in invoice["description"]
        rows = invoice["reply_markup"]["inline_keyboard"]
        assert rows[0][0] == {"text": "Pay ⭐ 70", "pay": True}  # Telegram's rule: Pay comes first
        assert [c.method for c in api.calls()[mark:] if c.params.get("chat_id") == 520] == [
            "sendInvoice"]  # no second message: the hold time and the cancel button ride on the invoice
        cancel = next(b for row in rows for b in row if b.get("callback_data") == f"cancel:{order_id}")

        mark = api.mark()
        await shop.send(api.callback_update(ann, cancel["callback_data"], call.result))
        done = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 520, since=mark)
        assert "cancelled" in done.params["text"].lower()
        line = next(li for li in await shop.app.shop.stock() if li.sku == "GAME")
        assert (line.available, line.held) == (1, 0)
        # Paying the cancelled invoice now is refused before any Stars move.
        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 70))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is False
