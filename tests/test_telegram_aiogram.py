"""The Telegram storefront end to end: real aiogram polling a local fake Bot API, a real SQLite store."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.telegram.common import buyer_of
from core.clock import FakeClock
from core.inventory import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront, buttons, data_of, fake_api


@pytest.fixture
async def api():
    async for fake in fake_api():
        yield fake


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


async def buy(shop: Shopfront, user: dict, page) -> tuple[dict, object]:  # noqa: ANN001
    api, chat = shop.api, user["id"]
    mark = api.mark()
    buy_label = next(b["text"] for b in buttons(page) if b.get("callback_data", "").startswith("buy:"))
    await shop.send(api.callback_update(user, data_of(page, buy_label), api.last_message(chat)))
    invoice = await api.wait_for("sendInvoice", lambda c: c.params["chat_id"] == chat, since=mark)
    return invoice.params, invoice


async def test_given_a_customer_when_they_buy_with_stars_then_the_code_arrives_protected_in_a_spoiler_once(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
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
        assert not [c for c in api.calls("sendMessage")[mark:] if "tg-spoiler" in c.params.get("text", "")]
        assert api.calls("refundStarPayment") == []


async def test_given_a_chinese_client_then_the_shop_speaks_chinese_and_the_button_reads_goumai(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(1)
        li = api.user(502, "Li", "zh-hans")
        page = await browse_to_product(shop, li)
        assert "游戏点卡" in page.params["text"] and buttons(page)[0]["text"] == "购买"


async def test_given_someone_elses_invoice_when_they_pay_then_it_is_refused_or_refunded_and_nothing_is_sent(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
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
        api: FakeBotAPI, tmp_path: Path) -> None:
    clock = FakeClock()
    async with Shopfront(api, tmp_path, clock) as shop:
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
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
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
                                                                        data: str) -> None:
    async with Shopfront(api, tmp_path) as shop:
        ann = api.user(507)
        mark = api.mark()
        await shop.send(api.callback_update(ann, data, {"message_id": 1, "chat": {"id": 507, "type": "private"},
                                                        "date": 0}))
        await api.wait_for("answerCallbackQuery", since=mark)
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 507 and "reply_markup" in c.params,
                                  since=mark)
        assert "Catalogue" in str(menu.params["reply_markup"])
        assert all(len(b["callback_data"].encode()) <= 64 for b in buttons(menu))


async def test_paysupport_answers_with_the_support_contact(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        ann = api.user(508)
        mark = api.mark()
        await shop.send(api.message_update(ann, "/paysupport"))
        msg = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 508, since=mark)
        assert "@help" in msg.params["text"] and "refunded automatically" in msg.params["text"]
