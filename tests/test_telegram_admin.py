"""Merchant commands in Telegram end to end: aiogram or python-telegram-bot polling the local fake Bot API, a real
SQLite store, merchant = user 1 (`telegram.admins: [1]`)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.telegram.common import buyer_of
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront, buttons

BOSS = 1


def texts_to(api: FakeBotAPI, chat: int, since: int = 0) -> list[str]:
    """Every text the bot sent or edited into `chat` (as sent, edits included)."""
    return [c.params.get("text") or c.params.get("caption") or "" for c in api.calls()[since:]
            if c.method in ("sendMessage", "editMessageText", "sendDocument") and c.params.get("chat_id") == chat]


async def command(shop: Shopfront, user: dict, text: str) -> str:
    """Send a command; returns the text of the first message the bot answered with."""
    api = shop.api
    mark = api.mark()
    await shop.send(api.message_update(user, text))
    answer = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == user["id"], since=mark)
    return answer.params["text"]


async def upload(shop: Shopfront, user: dict, data: bytes, name: str, caption: str,
                 mime: str = "text/plain") -> int:
    mark = shop.api.mark()
    doc = shop.api.register_file(data, name, mime)
    await shop.send(shop.api.message_update(user, caption=caption, document=doc))
    return mark


async def sold_order(shop: Shopfront, user: dict, charge: str) -> tuple[str, str]:
    """A buyer's order paid in Stars and delivered: (order id, the plain code the buyer got)."""
    api, app = shop.api, shop.app
    game = await app.shop.product_by_sku("GAME")
    order = await app.shop.reserve(buyer_of(user["id"]), game.id, 1, "en", str(user["id"]))
    mark = api.mark()
    await shop.send(api.successful_payment_update(user, order.id, 70, charge))
    delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"]
                                  and c.params["chat_id"] == user["id"], since=mark)
    code = delivery.params["text"].split("<code>")[1].split("</code>")[0]
    return order.id, code


async def admin_commands(shop: Shopfront, actor: str = f"telegram:{BOSS}", action: str = "admin") -> list[dict]:
    async with shop.app.db.uow() as uow:
        return [e.detail for e in reversed(await uow.audit.latest(action, actor, limit=200))]


async def test_stock_shows_a_table_of_sku_title_available_held_sold(api: FakeBotAPI, tmp_path: Path,
                                                                     library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(4)
        ann = api.user(501)
        await sold_order(shop, ann, "charge-1")
        boss = api.user(BOSS, "Boss")
        text = await command(shop, boss, "/stock")
        assert text.startswith("<b>Stock</b>\n<pre>")
        rows = text.split("<pre>")[1].split("</pre>")[0].splitlines()
        assert rows[0].split() == ["SKU", "Title", "Available", "Held", "Sold"]
        assert rows[1].startswith("GAME") and "Game card" in rows[1] and rows[1].split()[-3:] == ["3", "0", "1"]
        assert rows[2].startswith("NOSTARS") and rows[2].split()[-3:] == ["0", "0", "0"]
        assert await admin_commands(shop) == [{"command": "stock"}]


async def test_import_a_txt_file_with_progress_then_the_counts(api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        boss = api.user(BOSS, "Boss")
        data = b"IMP-001\nIMP-002\nIMP-003\nIMP-002\nbad\x07code\nIMP-004\n"
        mark = await upload(shop, boss, data, "codes.txt", "/import GAME")
        result = await api.wait_for("sendMessage", lambda c: "finished" in c.params["text"], since=mark)
        assert "Imported: 4" in result.params["text"] and "Duplicates (skipped): 1" in result.params["text"]
        assert "Rejected: 1" in result.params["text"] and "5 (control characters)" in result.params["text"]

        calls = [c for c in api.calls()[mark:] if c.method in ("sendMessage", "editMessageText")]
        progress, edits = calls[0], calls[1:calls.index(result)]
        assert progress.method == "sendMessage" and "Importing codes into GAME" in progress.params["text"]
        assert "0% read" in progress.params["text"]
        # A slow machine may show one more step on the way; every step edits the same message, and the last
        # one before the counts says the reading is done.
        assert edits and all(e.method == "editMessageText" for e in edits)
        assert {e.params["message_id"] for e in edits} == {progress.result["message_id"]}
        assert "100% read" in edits[-1].params["text"] and "Done" in edits[-1].params["text"]
        assert [c.method for c in api.calls("getFile")[-1:]] == ["getFile"]

        lines = {s.sku: s for s in await shop.app.shop.stock()}
        assert lines["GAME"].available == 4
        assert (await admin_commands(shop))[-1] == {"command": "import", "sku": "GAME", "file": "codes.txt",
                                                    "bytes": len(data), "imported": 4, "duplicates": 1, "rejected": 1}


@pytest.mark.parametrize("name, data, mime, says", [
    ("codes.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text/plain", "looks like a binary file"),
    ("codes.pdf", b"CODE-1\nCODE-2\n", "application/pdf", "is not a .txt or .csv file"),
])
async def test_import_of_a_file_that_is_not_codes_is_refused_and_nothing_lands(
        api: FakeBotAPI, tmp_path: Path, name: str, data: bytes, mime: str, says: str) -> None:
    async with Shopfront(api, tmp_path) as shop:
        boss = api.user(BOSS, "Boss")
        downloads = len(api.calls("getFile"))
        mark = await upload(shop, boss, data, name, "/import GAME", mime)
        refused = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert says in refused.params["text"] and "nothing was imported" in refused.params["text"]
        assert len(texts_to(api, BOSS, mark)) == 1  # no progress message
        assert len(api.calls("getFile")) == downloads + (0 if name.endswith(".pdf") else 1)
        assert {s.sku: s.available for s in await shop.app.shop.stock()}["GAME"] == 0
        assert (await admin_commands(shop))[-1]["refused"] in ("binary_file", "bad_file_type")


async def test_orders_and_order_detail_show_the_delivery_but_never_a_code(api: FakeBotAPI, tmp_path: Path,
                                                                          library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(3)
        ann = api.user(501)
        order_id, code = await sold_order(shop, ann, "charge-1")
        assert code in codes
        boss = api.user(BOSS, "Boss")
        mark = api.mark()

        listing = await command(shop, boss, "/orders")
        assert order_id in listing and "delivered" in listing
        assert order_id in await command(shop, boss, "/orders delivered")
        assert "No orders" in await command(shop, boss, "/orders refunded")

        detail = await command(shop, boss, f"/order {order_id}")
        assert f"Order {order_id}" in detail and "telegram:501" in detail and "charge-1" in detail
        assert "Codes: 1" in detail and "deliver · system" in detail
        sent_to_boss = texts_to(api, BOSS, mark)
        assert sent_to_boss and not any(c in text for text in sent_to_boss for c in codes)
        assert [d["command"] for d in await admin_commands(shop)] == ["orders", "orders", "orders", "order"]


async def test_refund_refunds_the_stars_once_tells_the_buyer_and_refuses_a_second_time(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        ann = api.user(501)
        order_id, _ = await sold_order(shop, ann, "charge-r")
        boss = api.user(BOSS, "Boss")
        mark = api.mark()

        answer = await command(shop, boss, f"/refund {order_id}")
        assert "Refund queued" in answer and "⭐70" in answer and "telegram:501" in answer
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params == {"user_id": 501, "telegram_payment_charge_id": "charge-r"} and refund.status == 200
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "refunded" in told.params["text"] and "the shop refunded the order" in told.params["text"]

        again = await command(shop, boss, f"/refund {order_id}")
        assert "cannot be refunded twice" in again
        await asyncio.sleep(0.3)
        assert len(api.calls("refundStarPayment")) == 1
        for _ in range(50):  # the order turns 'refunded' once the outbox marked the refund sent
            if (await shop.app.shop.order_for(order_id, buyer_of(501)))[0].status.value == "refunded":
                break
            await asyncio.sleep(0.05)
        assert "refunded" in await command(shop, boss, f"/order {order_id}")
        details = await admin_commands(shop)
        assert details[0]["command"] == "refund" and details[0]["provider"] == "telegram_stars"
        assert details[1]["refused"] == "already_refunded" and details[1]["order"] == order_id


async def test_product_price_change_shows_on_the_product_page_and_off_hides_it(api: FakeBotAPI, tmp_path: Path,
                                                                               library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(1)
        boss, ann = api.user(BOSS, "Boss"), api.user(501)
        game = await shop.app.shop.product_by_sku("GAME")

        answer = await command(shop, boss, "/product GAME price 1250")
        assert "CN¥10.00 → CN¥12.50" in answer and "config.yaml" in answer
        assert "→ 90" in await command(shop, boss, "/product GAME stars 90")
        here = {"message_id": 1, "chat": {"id": 501, "type": "private"}, "date": 0}
        mark = api.mark()
        await shop.send(api.callback_update(ann, f"p:{game.id}", here))
        page = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "CN¥12.50" in page.params["text"] and "90 Stars" in page.params["text"]

        assert "off sale" in await command(shop, boss, "/product GAME off")
        mark = api.mark()
        await shop.send(api.message_update(ann, "/start"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        mark = api.mark()
        await shop.send(api.callback_update(ann, buttons(menu)[0]["callback_data"], api.last_message(501)))
        listing = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "Game card" not in str(listing.params) and "Web only" in str(listing.params)
        mark = api.mark()
        await shop.send(api.callback_update(ann, f"p:{game.id}", here))
        gone = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "does not exist" in gone.params["text"]

        created = await command(shop, boss, "/product new VIP-1M 3000 200 VIP one month")
        assert "VIP-1M" in created and "/import VIP-1M" in created
        assert [d["command"] for d in await admin_commands(shop)] == ["product", "product", "product", "product_new"]


async def test_non_merchants_get_not_allowed_and_no_data(api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        ann = api.user(501)
        order_id, _ = await sold_order(shop, ann, "charge-x")
        mallory = api.user(666, "Mallory")
        mark = api.mark()
        for text in ("/stock", f"/refund {order_id}", "/product GAME price 1", f"/order {order_id}", "/admin"):
            answer = await command(shop, mallory, text)
            assert answer == "<b>Not allowed: this command is for the shop&#x27;s merchants only.</b>", text
        await upload(shop, mallory, b"EVIL-1\n", "codes.txt", "/import GAME")
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 666 and "Not allowed" in c.params["text"],
                           since=mark + 1)
        assert all(t.startswith("<b>Not allowed") for t in texts_to(api, 666, mark))
        assert len(texts_to(api, 666, mark)) == 6
        # /orders is the buyer's own "My orders".
        assert "My orders" in await command(shop, mallory, "/orders")

        await asyncio.sleep(0.2)
        assert api.calls("getFile") == [] and api.calls("refundStarPayment") == []
        assert (await shop.app.shop.product_by_sku("GAME")).price == 1000
        assert {s.sku: s.available for s in await shop.app.shop.stock()}["GAME"] == 1
        assert await admin_commands(shop, "telegram:666") == []
        denied = await admin_commands(shop, "telegram:666", "admin_denied")
        assert [d["command"] for d in denied] == ["/stock", "/refund", "/product", "/order", "/admin", "/import"]


async def test_a_merchants_plain_text_and_buyer_commands_go_to_the_shop(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        boss = api.user(BOSS, "Boss")
        assert "Welcome to TG Shop" in await command(shop, boss, "/start")
        assert "did not understand" in await command(shop, boss, "hello")
        assert "/stock — stock per SKU" in await command(shop, boss, "/admin")
        mark = await upload(shop, boss, b"CODE-1\n", "codes.txt", "")  # a file without the caption: how to
        how = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert "/import SKU" in how.params["text"] and api.calls("getFile") == []
        zh = api.user(2, "Li", "zh-hans")
        shop.runtime.frontend.admin.admins.add(2)
        assert "库存" in await command(shop, zh, "/stock")
