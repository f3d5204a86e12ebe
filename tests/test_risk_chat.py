"""Rules and risk in the chat, end to end on Telegram through the real libraries and the fake Bot API:
the challenge, phone binding by the user's own contact, review with the merchant's buttons, bans and /risk, and
the incoming flood limit. The core decisions have their own tests (tests/test_risk.py, tests/test_rules.py)."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from core.clock import FakeClock
from core.flood import FloodGate
from core.models import Buyer, OrderStatus
from core.supply import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, buttons
from tests.test_telegram_storefront import browse_to_product
from tests.wechat_harness import ADMIN, APPID, SECRET, WeChatShop, option

CHALLENGE = {"risk": {"new_account_points": 30}}  # a brand-new account scores 30 = challenge_at
REVIEW = {"risk": {"new_account_points": 60}}  # = review_at
MERCHANT = 1


def _buy_button(page) -> str:
    return next(b["callback_data"] for b in buttons(page) if b.get("callback_data", "").startswith("buy:"))


async def _tap(shop: Shopfront, user: dict, data: str, method: str = "sendMessage"):
    api = shop.api
    mark = api.mark()
    await shop.send(api.callback_update(user, data, api.last_message(user["id"]) or {
        "message_id": 1, "date": 0, "chat": {"id": user["id"], "type": "private"}}))
    return await api.wait_for(method, lambda c: c.params.get("chat_id") == user["id"], since=mark)


def _answer(text: str) -> int:
    a, b = re.search(r"(\d) \+ (\d)", text).groups()
    return int(a) + int(b)


# -- the flood gate's arithmetic, on a fake clock -----------------------------------------------------------

def test_given_a_flooder_then_a_burst_passes_the_next_updates_wait_their_turn_and_the_rest_are_dropped_once_told():
    now = [0.0]
    gate = FloodGate(per_minute=60, burst=3, max_delay=2.0, clock=lambda: now[0])
    assert [gate.admit("u").delay for _ in range(3)] == [0, 0, 0]
    slowed = [gate.admit("u") for _ in range(2)]
    assert [round(a.delay, 3) for a in slowed] == [1.0, 2.0] and not any(a.drop for a in slowed)
    dropped = [gate.admit("u") for _ in range(3)]
    assert [a.drop for a in dropped] == [True, True, True]
    assert [a.warn for a in dropped] == [True, False, False]  # "slow down" once per flood
    assert not gate.admit("someone else").drop  # one flooder never slows the others
    now[0] += 10.0  # tokens come back: a calm sender is served at once again, and warned again next flood
    assert gate.admit("u") == gate.admit("calm") and not gate.admit("u").drop


# -- challenge ------------------------------------------------------------------------------------------------

async def test_given_a_challenged_buyer_when_they_tap_a_wrong_then_the_right_answer_then_the_invoice_follows(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=CHALLENGE) as shop:
        await shop.stock(2)
        ann = api.user(601, "Ann")
        page = await browse_to_product(shop, ann)
        challenge = await _tap(shop, ann, _buy_button(page))
        assert "Quick check" in challenge.params["text"]
        options = [b for b in buttons(challenge) if b["callback_data"].startswith("challenge:")]
        assert len(options) == 4 and len({b["text"] for b in options}) == 4
        assert api.calls("sendInvoice") == []  # nothing held yet
        right = _answer(challenge.params["text"])
        wrong = next(b for b in options if b["text"] != str(right))
        again = await _tap(shop, ann, wrong["callback_data"])
        assert "not the right answer" in again.params["text"] and "Game card" in again.params["text"]

        # The used token cannot be answered again, even rightly (a replayed or guessed button).
        token = wrong["callback_data"].split(":")[1]
        replay = await _tap(shop, ann, f"challenge:{token}:{right}:{wrong['callback_data'].split(':')[3]}:1")
        assert "not the right answer" in replay.params["text"]

        challenge = await _tap(shop, ann, _buy_button(again))
        right = _answer(challenge.params["text"])
        ok = next(b for b in buttons(challenge) if b["text"] == str(right))
        invoice = await _tap(shop, ann, ok["callback_data"], "sendInvoice")
        assert invoice.params["prices"][0]["amount"] == 70
        # Passed: the next purchase within pass_minutes is not challenged.
        page = await browse_to_product(shop, ann)
        assert (await _tap(shop, ann, _buy_button(page), "sendInvoice")).params["payload"] != invoice.params["payload"]


async def test_given_another_buyers_challenge_button_then_it_does_not_let_them_through(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path, extra=CHALLENGE) as shop:
        await shop.stock(2)
        ann, eve = api.user(602, "Ann"), api.user(603, "Eve")
        challenge = await _tap(shop, ann, _buy_button(await browse_to_product(shop, ann)))
        right = next(b for b in buttons(challenge) if b["text"] == str(_answer(challenge.params["text"])))
        await browse_to_product(shop, eve)
        answer = await _tap(shop, eve, right["callback_data"])  # Eve replays Ann's right answer
        assert "not the right answer" in answer.params["text"]
        assert api.calls("sendInvoice") == []


# -- phone binding ------------------------------------------------------------------------------------------------

PHONE_ONLY = {"catalog": [{"sku": "VIP", "title": "Video VIP", "price": 1500, "stars": 90,
                           "rules": {"phone_required": True, "regions": {"allow": [86]}}}]}


async def test_given_a_phone_only_product_when_someone_elses_contact_is_shared_then_it_is_refused_and_own_binds(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=PHONE_ONLY) as shop:
        ann = api.user(604, "Ann")
        vip = next(p for p in await shop.app.shop.products() if p.sku == "VIP")
        await shop.send(api.message_update(ann, "/start"))
        ask = await _tap(shop, ann, f"buy:{vip.id}:1")
        assert "needs a bound phone" in ask.params["text"]
        keyboard = ask.params["reply_markup"]["keyboard"]
        assert keyboard[0][0]["request_contact"] is True and ask.params["reply_markup"]["one_time_keyboard"]

        mark = api.mark()  # a contact forwarded from someone else: another user id, or none at all
        for contact in (api.contact("+8613800000001", user_id=999), api.contact("+8613800000002")):
            await shop.send(api.message_update(ann, contact=contact))
        refusals = [c for c in api.calls_since(mark, "sendMessage") if c.params["chat_id"] == 604]
        assert sum("Only your own phone" in c.params["text"] for c in refusals) == 2
        assert (await shop.app.shop.risk.risk_for(Buyer("telegram", "604"))).facts.phone == ""

        mark = api.mark()
        await shop.send(api.message_update(ann, contact=api.contact("+44 7700 900123", user_id=604)))
        bound = await api.wait_for("sendMessage", lambda c: "is bound" in c.params["text"], since=mark)
        assert bound.params["reply_markup"] == {"remove_keyboard": True}
        assert "+447700900123" not in bound.params["text"]  # masked in the chat
        assert (await shop.app.shop.risk.risk_for(Buyer("telegram", "604"))).facts.phone == "447700900123"
        # Bound, but a UK number: the region rule (China only) names itself.
        refused = await _tap(shop, ann, f"buy:{vip.id}:1")
        assert "not sold to phone numbers from +44" in refused.params["text"]


# -- review ---------------------------------------------------------------------------------------------------------

async def _held_for_review(shop: Shopfront, user: dict) -> tuple[str, object]:
    api = shop.api
    mark = api.mark()
    told = await _tap(shop, user, _buy_button(await browse_to_product(shop, user)))
    assert "being checked" in told.params["text"]
    order_id = re.search(r"Order (\S+) is being checked", told.params["text"]).group(1)
    alert = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
    assert order_id in alert.params["text"] and "new_account+60" in alert.params["text"]
    return order_id, alert


async def test_given_an_order_held_for_review_when_the_merchant_taps_approve_then_the_buyer_pays_and_gets_the_code(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=REVIEW) as shop:
        codes = await shop.stock(2)
        ann, merchant = api.user(605, "Ann"), api.user(MERCHANT, "Boss")
        order_id, alert = await _held_for_review(shop, ann)
        assert [b["callback_data"] for b in buttons(alert)] == [f"/review approve {order_id}",
                                                                f"/review reject {order_id}"]
        # Paying before the merchant decided is refused at pre-checkout.
        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 70))
        assert (await api.wait_for("answerPreCheckoutQuery", since=mark)).params["ok"] is False

        mark = api.mark()
        await shop.send(api.callback_update(merchant, f"/review approve {order_id}", api.last_message(MERCHANT)))
        done = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
        assert "approved" in done.params["text"]
        # told at once, not at the outbox's next round (every 5 s)
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 605, since=mark, timeout=2.0)
        assert "passed the check" in told.params["text"]
        pay = next(b for b in buttons(told) if b["text"] == "💳 Pay now")
        invoice = await _tap(shop, ann, pay["callback_data"], "sendInvoice")
        assert invoice.params["payload"] == order_id

        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 70))
        assert (await api.wait_for("answerPreCheckoutQuery", since=mark)).params["ok"] is True
        await shop.send(api.successful_payment_update(ann, order_id, 70, "charge-r1"))
        delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
        assert codes[0] in delivery.params["text"] and delivery.params["chat_id"] == 605
        # The queue is empty now, and approving twice says why it cannot.
        mark = api.mark()
        await shop.send(api.message_update(merchant, "/review"))
        queue = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
        assert "No order is waiting" in queue.params["text"]


async def test_given_an_order_held_for_review_when_a_buyer_presses_approve_then_nothing_happens_and_reject_releases(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path, extra=REVIEW) as shop:
        await shop.stock(1)
        ann, merchant = api.user(606, "Ann"), api.user(MERCHANT, "Boss")
        order_id, _ = await _held_for_review(shop, ann)
        assert (await shop.app.shop.stock())[0].held == 1

        # Ann crafts the merchant's button data: refused, audited, the order still waits.
        mark = api.mark()
        await shop.send(api.callback_update(ann, f"/review approve {order_id}", api.last_message(606)))
        answer = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 606, since=mark)
        assert "Not allowed" in answer.params["text"]
        queue = await shop.app.shop.risk.review_queue()
        assert [r.order_id for r, _ in queue] == [order_id]

        # The queue shows the order with its buttons; the merchant rejects with a note.
        mark = api.mark()
        await shop.send(api.message_update(merchant, "/review"))
        listing = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
        assert order_id in listing.params["text"] and "telegram:606" in listing.params["text"]
        assert f"/review reject {order_id}" in [b["callback_data"] for b in buttons(listing)]
        mark = api.mark()
        await shop.send(api.message_update(merchant, f"/review reject {order_id} resold cards"))
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 606, since=mark, timeout=2.0)
        assert f"Order {order_id} did not pass the shop&#x27;s check" in told.params["text"]
        answer = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
        assert f"Order {order_id} rejected" in answer.params["text"]  # the merchant reads a sentence, not a key
        order, _ = await shop.app.shop.order_for(order_id, Buyer("telegram", "606"))
        assert order.status is OrderStatus.CANCELLED
        assert (await shop.app.shop.stock())[0].available == 1  # the held code is for sale again


# -- bans and /risk ---------------------------------------------------------------------------------------------

async def test_given_a_banned_user_then_their_orders_are_refused_until_unbanned_and_risk_shows_why(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(2)
        ann, merchant = api.user(607, "Ann"), api.user(MERCHANT, "Boss")

        async def merchant_says(text: str) -> str:
            mark = api.mark()
            await shop.send(api.message_update(merchant, text))
            return (await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == MERCHANT, since=mark)
                    ).params["text"]

        assert "Blacklisted" in await merchant_says("/ban user 607 chargebacks")
        refused = await _tap(shop, ann, _buy_button(await browse_to_product(shop, ann)))
        assert "we cannot accept this order" in refused.params["text"]
        assert api.calls("sendInvoice") == []
        bans = await merchant_says("/bans")
        assert "telegram:607" in bans and "chargebacks" in bans
        report = await merchant_says("/risk 607")
        assert "telegram:607" in report and "Blacklisted as: user" in report
        assert "lifted" in await merchant_says("/unban user telegram:607")
        assert "was not blacklisted" in await merchant_says("/unban user 607")
        assert "/ban user|phone|payer" in await merchant_says("/ban nobody")  # usage
        invoice = await _tap(shop, ann, _buy_button(await browse_to_product(shop, ann)), "sendInvoice")
        assert invoice.params["prices"][0]["amount"] == 70


# -- flood -------------------------------------------------------------------------------------------------------

async def test_given_a_user_flooding_the_bot_then_they_are_told_once_to_slow_down_and_others_are_served(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    flood = {"risk": {"flood_burst": 3, "flood_per_minute": 6, "flood_max_delay_seconds": 0}}
    async with Shopfront(api, tmp_path, library=library, extra=flood) as shop:
        mallory, ann = api.user(608, "Mallory"), api.user(609, "Ann")
        mark = api.mark()
        for _ in range(8):
            await shop.send(api.message_update(mallory, "/start"))
        await shop.send(api.message_update(ann, "/start"))
        await asyncio.sleep(0.1)
        to_mallory = [c.params["text"] for c in api.calls_since(mark, "sendMessage") if c.params["chat_id"] == 608]
        assert sum("TG Shop" in t for t in to_mallory) == 3
        assert sum("very fast" in t for t in to_mallory) == 1 and len(to_mallory) == 4
        assert any("TG Shop" in c.params["text"] for c in api.calls_since(mark, "sendMessage")
                   if c.params["chat_id"] == 609)
        # A flooding tap still gets its callback answered (the button stops spinning).
        mark = api.mark()
        await shop.send(api.callback_update(mallory, "cat", api.last_message(608)))
        assert (await api.wait_for("answerCallbackQuery", since=mark)) is not None


# -- WeChat: the text version ------------------------------------------------------------------------------------

async def test_given_a_challenged_wechat_buyer_then_the_options_are_numbered_and_the_right_number_holds_the_order(
        tmp_path: Path) -> None:
    ann = "o-ann"
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, extra=CHALLENGE) as shop:
        await shop.stock(2)
        menu = await shop.wx.subscribe(ann)
        catalog = await shop.wx.text(ann, option(menu, "商品列表"))
        product = await shop.wx.text(ann, option(catalog, "游戏点卡"))
        challenge = await shop.wx.text(ann, "1")
        assert "安全验证" in challenge and "直接回复答案数字" in challenge and "回复 1" not in challenge
        right = _answer(challenge)
        options = re.search(r"（([\d / ]+)）", challenge).group(1).split(" / ")
        assert str(right) in options and len(options) == 4
        failed = await shop.wx.text(ann, next(o for o in options if o != str(right)))
        assert "答案不正确" in failed and "游戏点卡" in failed  # back on the product page
        assert await shop.order_ids(ann) == []
        challenge = await shop.wx.text(ann, option(failed, "购买"))
        held = await shop.wx.text(ann, str(_answer(challenge)))  # the answer itself, typed
        assert "库存已为您锁定" in held
        assert len(await shop.order_ids(ann)) == 1
        assert product and ADMIN  # the merchant got nothing to review: a challenge is the buyer's business
        assert not [t for t in api.texts(ADMIN) if "审核" in t]


async def test_given_a_wechat_order_held_for_review_then_the_merchant_gets_the_commands_to_type_and_approve_works(
        tmp_path: Path) -> None:
    ann = "o-bob"
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, extra=REVIEW) as shop:
        await shop.stock(1)
        menu = await shop.wx.subscribe(ann)
        catalog = await shop.wx.text(ann, option(menu, "商品列表"))
        await shop.wx.text(ann, option(catalog, "游戏点卡"))
        told = await shop.wx.text(ann, "1")
        assert "正在审核" in told or "审核" in told
        await shop.idle()
        order_id = (await shop.order_ids(ann))[0]
        alert = next(t for t in api.texts(ADMIN) if order_id in t)
        assert f"/review approve {order_id}" in alert and f"/review reject {order_id}" in alert
        done = await shop.wx.text(ADMIN, f"/review approve {order_id}")
        assert order_id in done
        await shop.idle()
        assert any("审核" in t and order_id in t for t in api.texts(ann)[-2:])


# -- goods that start later -----------------------------------------------------------------------------------

async def test_given_a_membership_that_starts_next_month_when_paid_then_the_code_arrives_on_that_date_not_before(
        api: FakeBotAPI, tmp_path: Path) -> None:
    clock = FakeClock()  # 2026-01-01
    later = {"catalog": [{"sku": "VIP", "title": "Video VIP", "price": 1500, "stars": 90,
                          "rules": {"effective_from": "2026-02-01", "deliver_on_effective": True}}]}
    async with Shopfront(api, tmp_path, clock, extra=later) as shop:
        await import_codes(shop.app.db.uow, shop.app.vault, clock, "VIP", [b"VIP-0001\n"])
        ann = api.user(610, "Ann")
        vip = next(p for p in await shop.app.shop.products() if p.sku == "VIP")
        await shop.send(api.message_update(ann, "/start"))
        page = await _tap(shop, ann, f"p:{vip.id}")
        assert "Valid from 2026-02-01; your code is sent to you on that day." in page.params["text"]
        invoice = await _tap(shop, ann, _buy_button(page), "sendInvoice")
        order_id = invoice.params["payload"]
        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, order_id, 90))
        await shop.send(api.successful_payment_update(ann, order_id, 90, "charge-v1"))
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 610, since=mark)
        assert "will be sent to you on 2026-02-01 00:00 UTC" in told.params["text"]
        await shop.app.shop.dispatcher.drain()
        assert not [c for c in api.calls_since(mark, "sendMessage") if "VIP-0001" in c.params["text"]]

        detail = await _tap(shop, ann, f"o:{order_id}")
        assert "Your code will be sent on 2026-02-01" in detail.params["text"]
        assert not [b for b in buttons(detail) if b["callback_data"].startswith("k:")]
        early = await _tap(shop, ann, f"k:{order_id}")  # the show-codes button from an old message, or forged
        assert "cannot be shown before then" in early.params["text"] and "VIP-0001" not in early.params["text"]

        clock.advance(days=31, minutes=1)
        mark = api.mark()
        await shop.app.shop.dispatcher.drain()
        delivery = await api.wait_for("sendMessage", lambda c: "VIP-0001" in c.params["text"], since=mark)
        assert delivery.params["chat_id"] == 610 and delivery.params["protect_content"] is True
        assert "Valid from 2026-02-01" in delivery.params["text"]
