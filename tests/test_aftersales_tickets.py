"""After-sales, second part, end to end on Telegram through the real libraries and the local fake Bot
API (and the local fake supplier): the supplier's code check before a reissue, tickets that reach the merchants
with reissue / refund / reject buttons (refused to anyone else), `/tickets`, a refund from a ticket through Stars,
"other" with the buyer's own words, the ticket's status on the order screen, the buyer's history, and status
messages of top-up and supplier orders (pending -> done / failed -> refunded)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.telegram.common import buyer_of
from core.models import OrderStatus
from core.supply import import_codes, poll_topups
from tests.fake_bot_api import FakeBotAPI
from tests.fake_supplier import FakeSupplier, Upstream
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.telegram_harness import Shopfront, buttons
from tests.test_telegram_admin import BOSS, admin_commands, command, texts_to
from tests.test_wechat_storefront import buy_game
from tests.wechat_harness import ADMIN, APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop, option

GIFT = {"sku": "GIFT", "title": "Gift card", "price": 1000, "stars": 70, "supplier": "up",
        "supplier_sku": "SUP-GAME-10"}  # a pool product whose supplier can check a code
TOPUP = {"sku": "CM-30", "title": "China Mobile ¥30", "price": 3000, "stars": 200, "kind": "topup",
         "supplier": "up", "supplier_sku": "SUP-CM-30", "account_pattern": r"^1[3-9]\d{9}$"}
BOUGHT = {"sku": "UP-10", "title": "Upstream card", "price": 1000, "stars": 70, "kind": "supplier",
          "supplier": "up", "supplier_sku": "SUP-GAME-10"}


@pytest.fixture
async def supplier():
    server = await FakeSupplier().start()
    yield server
    await server.stop()


def _here(user: dict) -> dict:
    return {"message_id": 1, "chat": {"id": user["id"], "type": "private"}, "date": 0}


async def press(shop: Shopfront, user: dict, data: str) -> int:
    """The user presses a button carrying `data`; returns the mark before it (for `since=`)."""
    mark = shop.api.mark()
    await shop.send(shop.api.callback_update(user, data, _here(user)))
    return mark


async def answer(shop: Shopfront, user: dict, data: str):  # noqa: ANN201
    """Press and return the first message the bot sent to the user after it."""
    mark = await press(shop, user, data)
    return await shop.api.wait_for("sendMessage", lambda c: c.params["chat_id"] == user["id"], since=mark)


async def paid(shop: Shopfront, user: dict, sku: str, charge: str) -> tuple[str, str]:
    """A Stars payment for one of SKU, delivered: (order id, the code the buyer got)."""
    api, app = shop.api, shop.app
    product = await app.shop.product_by_sku(sku)
    order = await app.shop.reserve(buyer_of(user["id"]), product.id, 1, "en", str(user["id"]))
    mark = api.mark()
    await shop.send(api.successful_payment_update(user, order.id, product.stars, charge))
    got = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"]
                             and c.params["chat_id"] == user["id"], since=mark)
    await delivered(shop, order.id)
    return order.id, got.params["text"].split("<code>")[1].split("</code>")[0]


async def delivered(shop: Shopfront, order_id: str) -> None:
    for _ in range(200):
        if any(e.action == "deliver" for e in await shop.app.shop.audit_for(order_id)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no deliver entry")


async def reports(shop: Shopfront, order_id: str) -> list[dict]:
    return [e.detail for e in await shop.app.shop.audit_for(order_id) if e.action == "report"]


async def tickets_of(shop: Shopfront, order_id: str) -> list:  # noqa: ANN401
    return (await shop.app.shop.problems.tickets_for([order_id])).get(order_id, [])


async def gift_stock(shop: Shopfront, n: int) -> list[str]:
    codes = [f"GIFT-{i:04d}" for i in range(n)]
    await import_codes(shop.app.db.uow, shop.app.vault, shop.app.clock, "GIFT", [(c + "\n").encode() for c in codes])
    return codes


def spoilers(api: FakeBotAPI, chat: int, since: int) -> list[str]:
    return [t.split("<code>")[1].split("</code>")[0] for t in texts_to(api, chat, since) if "tg-spoiler" in t]


# -- 1. the supplier's check ---------------------------------------------------------------------------------

async def test_the_supplier_says_the_code_is_unused_so_nothing_is_reissued_but_the_buyer_may_still_ask_the_shop(
        api: FakeBotAPI, supplier: FakeSupplier, tmp_path: Path, library: str) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [GIFT]}
    async with Shopfront(api, tmp_path, library=library, extra=extra) as shop:
        codes = await gift_stock(shop, 3)
        supplier.orders["R1"] = Upstream("R1", "buy", "SUP-GAME-10", 3, codes=list(codes))  # its own codes
        ann = api.user(501)
        api.user(BOSS, "Boss")
        order_id, code = await paid(shop, ann, "GIFT", "charge-u1")

        mark = api.mark()
        told = await answer(shop, ann, f"report:{order_id}:not_working")
        assert "valid and has not been used" in told.params["text"]
        insist = next(b for b in buttons(told) if b["text"] == "It still does not work: ask the shop")
        assert insist["callback_data"] == f"report:{order_id}:not_working:t"
        await shop.app.shop.dispatcher.drain()
        assert spoilers(api, 501, mark) == []  # no new code
        assert not any(order_id in t for t in texts_to(api, BOSS, mark))  # the merchants are not bothered
        assert [p["code"] for path, p in supplier.requests if path == "/api/check"] == [code]
        assert [(r["outcome"], r["check"]) for r in await reports(shop, order_id)] == [("unused", "valid")]

        # The buyer insists: a ticket for a person, with the supplier's word on it.
        mark = api.mark()
        told = await answer(shop, ann, insist["callback_data"])
        assert "went to the shop" in told.params["text"] and "T1" in told.params["text"]
        alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert "T1" in alert.params["text"] and order_id in alert.params["text"]
        assert [(r["outcome"], r.get("why")) for r in await reports(shop, order_id)][1] == ("ticket", "checked")
        assert spoilers(api, 501, mark) == [] and code not in alert.params["text"]


async def test_the_supplier_says_used_or_cannot_answer_then_the_ordinary_policy_reissues(
        api: FakeBotAPI, supplier: FakeSupplier, tmp_path: Path) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [GIFT]}
    async with Shopfront(api, tmp_path, extra=extra) as shop:
        codes = await gift_stock(shop, 4)
        supplier.orders["R1"] = Upstream("R1", "buy", "SUP-GAME-10", 4, codes=list(codes))
        ann = api.user(501)
        used_order, used_code = await paid(shop, ann, "GIFT", "charge-u2")
        down_order, _ = await paid(shop, ann, "GIFT", "charge-u3")

        supplier.used_codes.add(used_code)  # redeemed already (by someone): the buyer's claim holds
        mark = api.mark()
        told = await answer(shop, ann, f"report:{used_order}:used")
        assert "was replaced" in told.params["text"]
        [fresh] = (await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
                   ).params["text"].split("<code>")[1].split("</code>")[0:1]
        assert fresh in codes and fresh != used_code
        assert [(r["outcome"], r["check"]) for r in await reports(shop, used_order)] == [("reissued", "used")]

        supplier.faults["/api/check"] = ["500"] * 3  # the supplier is down: the shop's own policy decides
        told = await answer(shop, ann, f"report:{down_order}:not_working")
        assert "was replaced" in told.params["text"]
        assert [(r["outcome"], r["check"]) for r in await reports(shop, down_order)] == [("reissued", "error")]


# -- 2-4. tickets: the merchant's buttons, /tickets, refusals, the buyer's view ----------------------------

async def test_a_ticket_reaches_the_merchants_with_buttons_a_stranger_cannot_press_and_the_buyer_sees_its_status(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(4)
        ann, eve, boss = api.user(501), api.user(666, "Eve"), api.user(BOSS, "Boss")
        order_id, old = await paid(shop, ann, "GAME", "charge-k1")

        mark = await press(shop, ann, f"report:{order_id}:wrong_product")
        alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert "T1" in alert.params["text"] and "wrong_product" in alert.params["text"]
        assert [b["callback_data"] for b in buttons(alert)] == ["/reissue T1", f"/refund {order_id}", "/reject T1"]

        # Someone who is not a merchant presses (forges) the button: refused, audited, nothing changes.
        mark = api.mark()
        refused = await answer(shop, eve, "/reissue T1")
        assert "Not allowed" in refused.params["text"]
        assert await admin_commands(shop, "telegram:666", "admin_denied") == [{"command": "/reissue"}]
        await shop.app.shop.dispatcher.drain()
        assert spoilers(api, 501, mark) == [] and [t.status for t in await tickets_of(shop, order_id)] == ["open"]

        # The buyer sees the ticket open on the order screen.
        screen = await answer(shop, ann, f"order:{order_id}")
        assert "Ticket T1: open, waiting for the shop" in screen.params["text"]

        # /tickets lists it with a row of buttons; the merchant presses Reissue there.
        listing = await answer(shop, boss, "/tickets")
        assert "T1" in listing.params["text"] and order_id in listing.params["text"]
        assert "telegram:501" in listing.params["text"]
        assert [b["callback_data"] for b in buttons(listing)] == ["/reissue T1", f"/refund {order_id}", "/reject T1"]
        mark = api.mark()
        done = await answer(shop, boss, "/reissue T1")
        assert "1 new code(s)" in done.params["text"]
        new = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501
                                 and "tg-spoiler" in c.params["text"], since=mark)
        fresh = new.params["text"].split("<code>")[1].split("</code>")[0]
        assert fresh in codes and fresh != old
        assert [t.status for t in await tickets_of(shop, order_id)] == ["reissued"]
        screen = await answer(shop, ann, f"order:{order_id}")
        assert "Ticket T1: reissued" in screen.params["text"]

        # A second press of the same button (two merchants, or a double tap) decides nothing twice.
        mark = api.mark()
        again = await answer(shop, boss, "/reissue T1")
        assert "T1 was already answered: reissued" in again.params["text"]
        await shop.app.shop.dispatcher.drain()
        assert spoilers(api, 501, mark) == []
        assert "No open tickets" in (await answer(shop, boss, "/tickets")).params["text"]
        assert "Ticket T9 does not exist" in await command(shop, boss, "/reissue T9")
        assert not any(c in t for t in texts_to(api, BOSS) for c in codes)


async def test_refund_from_a_ticket_goes_through_stars_tells_the_buyer_and_closes_the_ticket(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(2)
        ann, boss = api.user(501), api.user(BOSS, "Boss")
        order_id, _ = await paid(shop, ann, "GAME", "charge-r1")
        mark = await press(shop, ann, f"report:{order_id}:wrong_product")
        alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        refund = next(b["callback_data"] for b in buttons(alert) if b["callback_data"].startswith("/refund"))

        mark = api.mark()
        queued = await answer(shop, boss, refund)
        assert order_id in queued.params["text"]
        await api.wait_for("refundStarPayment", since=mark)
        [call] = api.calls("refundStarPayment")
        assert call.params["telegram_payment_charge_id"] == "charge-r1" and int(call.params["user_id"]) == 501
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert order_id in told.params["text"] and "refund" in told.params["text"].lower()
        assert [t.status for t in await tickets_of(shop, order_id)] == ["refunded"]
        for _ in range(100):
            order, _ = await shop.app.shop.order_for(order_id, buyer_of(501))
            if order.status is OrderStatus.REFUNDED:
                break
            await asyncio.sleep(0.02)
        assert order.status is OrderStatus.REFUNDED
        screen = await answer(shop, ann, f"order:{order_id}")
        assert "Ticket T1: refunded" in screen.params["text"]
        assert "already answered: refunded" in (await answer(shop, boss, "/reject T1 too late")).params["text"]


async def test_reject_asks_for_the_reason_then_the_buyer_reads_it_in_the_chat_on_the_order_and_in_history(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(2)
        ann, boss = api.user(501), api.user(BOSS, "Boss")
        order_id, _ = await paid(shop, ann, "GAME", "charge-j1")
        mark = await press(shop, ann, f"report:{order_id}:wrong_product")
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)  # the alert

        how = await answer(shop, boss, "/reject T1")  # the Reject button: a reason cannot ride on a button
        assert "/reject T1 REASON" in how.params["text"]
        assert [t.status for t in await tickets_of(shop, order_id)] == ["open"]
        mark = api.mark()
        reason = "Redeemed on 11-25 at 09:14 from your account <b>you</b>"
        assert "was told your answer" in await command(shop, boss, f"/reject T1 {reason}")
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "Redeemed on 11-25" in told.params["text"] and "&lt;b&gt;you&lt;/b&gt;" in told.params["text"]
        [ticket] = await tickets_of(shop, order_id)
        assert (ticket.status, ticket.answer, ticket.decided_by) == ("rejected", reason, f"telegram:{BOSS}")

        screen = await answer(shop, ann, f"order:{order_id}")
        assert "Ticket T1: rejected — the shop&#x27;s answer: Redeemed on 11-25" in screen.params["text"]
        orders = await answer(shop, ann, "orders:0")
        assert "history:0" in [b["callback_data"] for b in buttons(orders)]
        history = await answer(shop, ann, "history:0")
        assert "Ticket T1: rejected" in history.params["text"]
        assert f"bought · order {order_id}" in history.params["text"]


async def test_other_takes_the_buyers_next_message_as_the_description_kept_as_plain_text(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        ann = api.user(501)
        order_id, _ = await paid(shop, ann, "GAME", "charge-o1")
        ask = await answer(shop, ann, f"report:{order_id}:other")
        assert "Describe the problem" in ask.params["text"]
        assert await reports(shop, order_id) == []  # nothing is reported before the words come

        words = "<script>alert(1)</script> the card says region locked; /refund " + "x" * 700
        mark = api.mark()
        await shop.send(api.message_update(ann, words))
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "went to the shop" in told.params["text"] and "T1" in told.params["text"]
        alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)
        assert "&lt;script&gt;alert(1)&lt;/script&gt; the card says region locked" in alert.params["text"]
        assert "<script>" not in alert.params["text"]
        [ticket] = await tickets_of(shop, order_id)
        assert ticket.problem == "other" and ticket.note == words[:500] and ticket.why == "reason"
        assert api.calls("refundStarPayment") == []  # the words are never run as a command

        # The next thing the buyer types is no description any more.
        mark = api.mark()
        await shop.send(api.message_update(ann, "hello?"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "did not understand" in menu.params["text"].lower() or "not understand" in menu.params["text"]
        assert len(await tickets_of(shop, order_id)) == 1


# -- 5. history ----------------------------------------------------------------------------------------------

async def test_history_lists_the_buyers_own_purchases_reveals_and_tickets_newest_first_in_pages(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(8)
        ann, bob = api.user(501), api.user(502, "Bob")
        mine = [(await paid(shop, ann, "GAME", f"charge-h{i}"))[0] for i in range(5)]
        bobs, _ = await paid(shop, bob, "GAME", "charge-hb")
        for oid in mine:  # each order's codes shown again: 5 reveals
            await answer(shop, ann, f"reveal:{oid}")
        mark = await press(shop, ann, f"report:{mine[0]}:wrong_product")
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=mark)  # the alert

        first = await answer(shop, ann, "history:0")
        text = first.params["text"]
        assert "page 1" in text and bobs not in text
        lines = [ln for ln in text.splitlines() if " · " in ln]
        assert len(lines) == 10 and "Ticket T1" in lines[0]  # newest first
        assert "codes shown · order" in lines[1] and "in chat 501 (telegram)" in lines[1]
        assert [b["callback_data"] for b in buttons(first)][:1] == ["history:1"]
        second = await answer(shop, ann, "history:1")
        rest = [ln for ln in second.params["text"].splitlines() if " · " in ln]
        assert len(rest) == 1 and f"bought · order {mine[0]}" in rest[0]
        assert "history:0" in [b["callback_data"] for b in buttons(second)]

        theirs = await answer(shop, bob, "history:0")
        assert bobs in theirs.params["text"] and not any(o in theirs.params["text"] for o in mine)
        assert "Ticket" not in theirs.params["text"]


# -- 6. status of top-up and supplier orders -----------------------------------------------------------------

async def _pay_topup(shop: Shopfront, user: dict, charge: str) -> str:
    product = await shop.app.shop.product_by_sku("CM-30")
    order = await shop.app.shop.reserve(buyer_of(user["id"]), product.id, 1, "en", str(user["id"]),
                                        account="13800138000")
    await shop.send(shop.api.successful_payment_update(user, order.id, 200, charge))
    return order.id


async def test_topup_status_messages_pending_then_done_and_failed_then_refunded(
        api: FakeBotAPI, supplier: FakeSupplier, tmp_path: Path, library: str) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [TOPUP]}
    async with Shopfront(api, tmp_path, library=library, extra=extra) as shop:
        ann, bob = api.user(901), api.user(902, "Bob")

        mark = api.mark()
        ok = await _pay_topup(shop, ann, "charge-t1")  # the supplier accepts: processing
        pending = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 901, since=mark)
        assert "accepted the top-up of order " + ok in pending.params["text"]
        assert "13800138000" in pending.params["text"]
        supplier.finish("T" + ok, "success")
        mark = api.mark()
        assert await poll_topups(shop.app.shop) == 1
        done = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 901, since=mark)
        assert ok in done.params["text"] and "accepted" not in done.params["text"]
        await shop.app.shop.dispatcher.drain()
        assert len([t for t in texts_to(api, 901) if "accepted the top-up" in t]) == 1  # said once

        # Done, yet the phone got nothing: a top-up offers "not received" (not the code problems), a ticket.
        choices = await answer(shop, ann, f"report:{ok}")
        labels = [b["text"] for b in buttons(choices)]
        assert "📵 Top-up not received" in labels and not any("work" in x for x in labels)
        mark = api.mark()
        told = await answer(shop, ann, f"report:{ok}:topup_missing")
        assert "ticket" in told.params["text"].lower()
        assert [tk.problem for tk in await tickets_of(shop, ok)] == ["topup_missing"]
        assert (await answer(shop, ann, f"report:{ok}:not_working")).params["text"]  # a code problem: refused
        assert [tk.problem for tk in await tickets_of(shop, ok)] == ["topup_missing"]

        supplier.topup_status = "failed"  # the next top-up fails upstream at once
        mark = api.mark()
        bad = await _pay_topup(shop, bob, "charge-t2")
        failed = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 902
                                    and "failed" in c.params["text"], since=mark)
        assert bad in failed.params["text"] and "being refunded" in failed.params["text"]
        await api.wait_for("refundStarPayment", lambda c: c.params["telegram_payment_charge_id"] == "charge-t2",
                           since=mark)
        back = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 902
                                  and "was refunded" in c.params["text"], since=mark)
        assert bad in back.params["text"] and "the top-up failed at the supplier" in back.params["text"]
        assert texts_to(api, 902, mark) == [failed.params["text"], back.params["text"]]  # failed, then refunded
        await shop.app.shop.dispatcher.drain()
        order, _ = await shop.app.shop.order_for(bad, buyer_of(902))
        assert order.status is OrderStatus.REFUNDED
        assert not any("accepted the top-up" in t for t in texts_to(api, 902))


async def test_a_supplier_purchase_delivers_its_codes_or_fails_tells_the_buyer_and_refunds(
        api: FakeBotAPI, supplier: FakeSupplier, tmp_path: Path) -> None:
    extra = {"suppliers": {"up": supplier.config()}, "catalog": [BOUGHT]}
    async with Shopfront(api, tmp_path, extra=extra) as shop:
        ann = api.user(903)
        product = await shop.app.shop.product_by_sku("UP-10")
        good = await shop.app.shop.reserve(buyer_of(903), product.id, 1, "en", "903")
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, good.id, 70, "charge-s0"))  # pending -> delivered
        codes = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 903, since=mark)
        assert spoilers(api, 903, mark) == supplier.orders["B" + good.id].codes and good.id in codes.params["text"]

        supplier.refuse["/api/buy"] = ["50001"]  # out of stock upstream: final
        order = await shop.app.shop.reserve(buyer_of(903), product.id, 1, "en", "903")
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order.id, 70, "charge-s1"))
        failed = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 903, since=mark)
        assert "could not deliver order " + order.id in failed.params["text"]
        await api.wait_for("refundStarPayment", since=mark)
        await shop.app.shop.dispatcher.drain()
        msgs = texts_to(api, 903, mark)
        assert len(msgs) == 2 and order.id in msgs[1] and "was refunded" in msgs[1] and "being" not in msgs[1]


# -- 7. one path on WeChat: report with the buyer's words -> ticket -> the merchant rejects it ----------------

async def test_on_wechat_a_report_with_the_buyers_words_becomes_a_ticket_the_merchant_answers_by_text(
        tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        pay = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
        try:
            async with WeChatShop(api, tmp_path, pay=pay) as shop:
                codes = await shop.stock(2)
                order_id = await buy_game(shop, "o-ann")
                assert (await shop.pay_notice(order_id, "o-ann"))[0] == 200
                await shop.idle()
                order_page = await shop.wx.text("o-ann", "1")  # the delivery's first option: the order
                asked = await shop.wx.text("o-ann", option(order_page, "报告问题"))
                described = await shop.wx.text("o-ann", option(asked, "其他问题"))
                assert "请用一条消息描述问题" in described
                reply = await shop.wx.text("o-ann", "卡密提示<地区不符>，无法兑换")
                assert "已提交给商家" in reply and "T1" in reply
                await shop.idle()
                [alert] = [t for t in api.texts(ADMIN) if "T1" in t]
                assert order_id in alert and "卡密提示<地区不符>，无法兑换" in alert
                assert "✖️ 驳回: /reject T1" in alert and f"↩️ 退款: /refund {order_id}" in alert
                assert not any(c in alert for c in codes)

                listing = await shop.wx.text(ADMIN, "/tickets")
                assert "T1" in listing and "买家描述：卡密提示<地区不符>，无法兑换" in listing
                assert "♻️ 补发 T1: /reissue T1" in listing and "回复 1" not in listing  # typed, not numbered
                assert "无权操作" in await shop.wx.text("o-ann", "/reject T1 不给")
                answer = await shop.wx.text(ADMIN, "/reject T1 该卡仅限中国大陆区账号使用")
                assert order_id in answer
                await shop.idle()
                assert any("该卡仅限中国大陆区账号使用" in t and order_id in t for t in api.texts("o-ann"))
                page = await shop.wx.text("o-ann", "/orders")
                page = await shop.wx.text("o-ann", option(page, order_id))
                assert "工单 T1：已驳回 — 商家答复：该卡仅限中国大陆区账号使用" in page
        finally:
            await pay.stop()
