"""Reseller ordering in a Telegram group chat, end to end: aiogram or python-telegram-bot polling the
local fake Bot API, a real SQLite store. Merchant = user 1; the reseller's owner = 300; members Bob (301, allowed)
and Carol (302, not allowed); the group = -1001."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bots.telegram.common import buyer_of
from core.clock import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront

BOSS, OWNER, BOB, CAROL = 1, 300, 301, 302
GROUP = -1001


def group_texts(api: FakeBotAPI, since: int = 0) -> list[str]:
    """Every text the bot sent or edited into the group (edits included)."""
    return [c.params.get("text") or c.params.get("caption") or "" for c in api.calls()[since:]
            if c.method in ("sendMessage", "editMessageText", "sendDocument", "sendPhoto")
            and c.params.get("chat_id") == GROUP]


async def say(shop: Shopfront, user: dict, text: str, *, in_group: bool = True, reply_to: dict | None = None
              ) -> str | None:
    """A message from `user` (in the group or in private); returns the text the bot answered there, if any."""
    api = shop.api
    chat = api.group_chat(GROUP, "Acme resellers") if in_group else None
    mark = api.mark()
    update = api.message_update(user, text, chat=chat)
    if reply_to is not None:
        update["message"]["reply_to_message"] = reply_to
    await shop.send(update)
    target = GROUP if in_group else user["id"]
    answers = [c for c in api.calls()[mark:] if c.method == "sendMessage" and c.params["chat_id"] == target]
    return answers[0].params["text"] if answers else None


async def press(shop: Shopfront, user: dict, data: str, message: dict) -> str | None:
    """A tap on a button of a group message; returns the answer to the tap."""
    api = shop.api
    mark = api.mark()
    await shop.send(api.callback_update(user, data, message))
    answer = await api.wait_for("answerCallbackQuery", since=mark)
    return answer.params.get("text")


async def wallet(shop: Shopfront) -> int:
    desk = shop.app.shop.groups
    r = await desk.owned_by(str(OWNER))
    assert r is not None and await shop.app.shop.resellers.ledger_sum(r.id) == r.balance  # balance = the ledger
    return r.balance


async def reseller_group(shop: Shopfront, *, credit: int = 5000) -> tuple[dict, dict, dict, dict]:
    """Given a reseller (owner 300, 10% off) with `credit` fen in the wallet, its group linked by the merchant,
    and Bob allowed by the owner. Returns (boss, owner, bob, carol)."""
    api = shop.api
    boss, owner = api.user(BOSS, "Boss"), api.user(OWNER, "Olga", username="olga")
    bob, carol = api.user(BOB, "Bob", username="bob"), api.user(CAROL, "Carol", username="carol")
    assert "is now a reseller" in await say(shop, boss, "/reseller add 300 10", in_group=False)
    answer = await say(shop, boss, f"/wallet 300 +{credit} bank transfer", in_group=False)
    assert "Credited CN¥" in answer and "top-up" in answer
    assert "now orders for telegram:300" in await say(shop, boss, "/linkgroup 300")
    # The owner cannot allow someone the bot has never seen by @username...
    assert "do not know @bob" in await say(shop, owner, "/allow @bob")
    # ...Bob is refused until then, and seen by it.
    assert "not allowed to order" in await say(shop, bob, "/buy GAME 2")
    assert "@bob may now order" in await say(shop, owner, "/allow @bob")
    return boss, owner, bob, carol


async def test_an_allowed_member_orders_in_the_group_and_gets_the_codes_in_private_only(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, telegram={"groups": {"buys_per_member_per_minute": 10}}
                         ) as shop:
        codes = await shop.stock(10)
        boss, owner, bob, carol = await reseller_group(shop)
        mark = api.mark()
        # Carol, not allowed, is refused; garbage arguments get the usage, an unknown SKU a clear error
        assert "not allowed to order" in await say(shop, carol, "/buy GAME 1")
        assert "Usage: /buy SKU QTY" in await say(shop, bob, "/buy GAME many")
        assert "no product NOPE" in await say(shop, bob, "/buy NOPE 1")
        # a command addressed to another bot is left alone
        assert await say(shop, bob, "/buy@other_bot GAME 2") is None

        # when Bob orders (addressed to this bot), the group sees the summary at the tier price
        quote_text = await say(shop, bob, "/buy@test_shop_bot GAME 2")
        assert "Game card (GAME) × 2" in quote_text and "CN¥9.00" in quote_text and "CN¥18.00" in quote_text
        assert "after: CN¥32.00" in quote_text
        quote = api.last_message(GROUP)
        confirm = next(b["callback_data"] for b in buttons_of(quote) if "Confirm" in b["text"])

        # Carol pressing Bob's Confirm is told it is not hers; nothing is charged
        assert await press(shop, carol, confirm, quote) == "This order is not yours."
        assert await wallet(shop) == 5000
        # garbage button data is answered, not crashed on
        assert await press(shop, carol, "gc:zzz", quote) == "This button is no longer valid."
        assert await press(shop, carol, "nonsense", quote) == "This button is no longer valid."

        # Bob confirms: paid from the wallet, his codes come in private, the group message says delivered
        assert "Paid from the wallet" in await press(shop, bob, confirm, quote)
        delivery = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOB
                                      and "tg-spoiler" in c.params["text"], since=mark)
        assert delivery.params["protect_content"] is True
        got = [c for c in codes if c in delivery.params["text"]]
        assert len(got) == 2
        await api.wait_for("editMessageText", lambda c: c.params["chat_id"] == GROUP
                           and "delivered ✓" in c.params["text"], since=mark)
        assert "delivered ✓" in api.last_message(GROUP)["text"] and not buttons_of(api.last_message(GROUP))
        assert await wallet(shop) == 3200
        # the order is Bob's (My orders) and the codes never reached the group
        orders = await shop.app.shop.my_orders(buyer_of(BOB))
        assert [(o.qty, o.amount, o.status.value) for o in orders] == [(2, 1800, "delivered")]
        assert not [t for t in group_texts(api) if any(c in t for c in codes)]

        # a second tap on the answered summary changes nothing
        assert await press(shop, bob, confirm, quote) == "This order was already answered."
        assert await wallet(shop) == 3200

        # the statement: the merchant's /wallet 300 and the owner's own /wallet in private
        text = await say(shop, boss, "/wallet 300", in_group=False)
        assert "Balance: CN¥32.00" in text and f"order -CN¥18.00 → CN¥32.00 · {orders[0].id}" in text
        assert "Balance: CN¥32.00" in await say(shop, owner, "/wallet", in_group=False)
        assert "no reseller account" in await say(shop, carol, "/wallet", in_group=False)
        # the merchant's list
        assert "#1 telegram:300 · 10% off" in await say(shop, boss, "/reseller", in_group=False)


def buttons_of(message: dict) -> list[dict]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def test_two_confirms_at_once_make_one_order_and_one_debit(api: FakeBotAPI, tmp_path: Path,
                                                                  library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(10)
        _, _, bob, _ = await reseller_group(shop)
        await say(shop, bob, "/buy GAME 3")
        quote = api.last_message(GROUP)
        confirm = next(b["callback_data"] for b in buttons_of(quote) if "Confirm" in b["text"])
        mark = api.mark()
        # two taps handled at the same time (the frontend entry both libraries call)
        frontend = shop.runtime.frontend
        await asyncio.gather(*(frontend.on_callback(BOB, GROUP, f"cb{i}", confirm, "en", in_group=True)
                               for i in range(2)))
        answers = sorted(c.params.get("text") or "" for c in api.calls("answerCallbackQuery")[-2:])
        assert answers[0].startswith("Paid from the wallet") and answers[1] == "This order was already answered."
        await api.wait_for("editMessageText", lambda c: "delivered ✓" in c.params["text"], since=mark)
        await shop.app.shop.dispatcher.drain()
        assert await wallet(shop) == 5000 - 3 * 900
        assert len(await shop.app.shop.my_orders(buyer_of(BOB))) == 1
        private = [c for c in api.calls("sendMessage")[0:] if c.params["chat_id"] == BOB
                   and "tg-spoiler" in c.params["text"]]
        assert len(private) == 1 and sum(c in private[0].params["text"] for c in codes) == 3


async def test_a_member_who_never_started_the_bot_gets_a_deep_link_and_the_codes_on_start(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(5)
        _, _, bob, _ = await reseller_group(shop)
        api.block_chat(BOB)  # the Bot API answers 403 to messages to Bob
        await say(shop, bob, "/buy GAME 1")
        quote = api.last_message(GROUP)
        confirm = next(b["callback_data"] for b in buttons_of(quote) if "Confirm" in b["text"])
        mark = api.mark()
        await press(shop, bob, confirm, quote)
        edit = await api.wait_for("editMessageText", lambda c: "https://t.me/test_shop_bot?start=g" in c.params["text"],
                                  since=mark)
        order_id = (await shop.app.shop.my_orders(buyer_of(BOB)))[0].id
        assert f"start=g{order_id}" in edit.params["text"]
        assert await wallet(shop) == 5000 - 900  # paid once, kept for Bob

        # Bob opens the link and presses Start: the codes come in private, the group says delivered
        api.unblock_chat(BOB)
        mark = api.mark()
        await shop.send(api.message_update(bob, f"/start g{order_id}"))
        delivery = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOB
                                      and "tg-spoiler" in c.params["text"], since=mark)
        assert sum(c in delivery.params["text"] for c in codes) == 1
        await api.wait_for("editMessageText", lambda c: c.params["chat_id"] == GROUP
                           and "delivered ✓" in c.params["text"], since=mark)
        # a second /start with the same link sends nothing again (the ordinary welcome instead)
        mark = api.mark()
        await shop.send(api.message_update(bob, f"/start g{order_id}"))
        await shop.app.shop.dispatcher.drain()
        assert not [c for c in api.calls_since(mark, "sendMessage") if "tg-spoiler" in c.params["text"]]

        # another order while Bob cannot be written to: a plain /start (no link) delivers it too
        api.block_chat(BOB)
        await say(shop, bob, "/buy GAME 1")
        quote = api.last_message(GROUP)
        mark = api.mark()
        await press(shop, bob, next(b["callback_data"] for b in buttons_of(quote) if "Confirm" in b["text"]), quote)
        await api.wait_for("editMessageText", lambda c: "start=g" in c.params["text"], since=mark)
        api.unblock_chat(BOB)
        mark = api.mark()
        await shop.send(api.message_update(bob, "/start"))
        delivery = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOB
                                      and "tg-spoiler" in c.params["text"], since=mark)
        assert sum(c in delivery.params["text"] for c in codes) == 1
        await api.wait_for("editMessageText", lambda c: "delivered ✓" in c.params["text"], since=mark)
        assert await wallet(shop) == 5000 - 2 * 900
        assert not [t for t in group_texts(api) if any(c in t for c in codes)]


async def test_a_large_order_comes_as_a_protected_file_in_private(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        codes = await shop.stock(80)
        _, _, bob, _ = await reseller_group(shop, credit=100_000)
        assert "× 70" in await say(shop, bob, "/buy GAME 70")
        quote = api.last_message(GROUP)
        mark = api.mark()
        await press(shop, bob, next(b["callback_data"] for b in buttons_of(quote) if "Confirm" in b["text"]), quote)
        doc = await api.wait_for("sendDocument", lambda c: c.params["chat_id"] == BOB, since=mark)
        name, data = doc.files["document"]
        assert name == "codes.txt" and doc.params["protect_content"] is True
        assert len(set(data.decode().split()) & set(codes)) == 70
        await api.wait_for("editMessageText", lambda c: "delivered ✓" in c.params["text"], since=mark)
        assert await wallet(shop) == 100_000 - 70 * 900


async def test_a_flood_of_buy_is_slowed_and_the_owner_manages_members_by_reply(api: FakeBotAPI, tmp_path: Path,
                                                                                library: str) -> None:
    clock = FakeClock()
    async with Shopfront(api, tmp_path, clock, library=library) as shop:
        await shop.stock(20)
        _, owner, bob, carol = await reseller_group(shop)
        # reply to Carol's message with /allow: she may order; /disallow 302 takes it back
        reply_to = api.message_update(carol, "hello", chat=api.group_chat(GROUP, "Acme"))["message"]
        assert f"{CAROL} may now order" in await say(shop, owner, "/allow", reply_to=reply_to)
        assert "Order summary" in await say(shop, carol, "/buy GAME 1")
        assert f"{CAROL} may no longer order" in await say(shop, owner, "/disallow 302")
        assert "not allowed" in await say(shop, carol, "/buy GAME 1")
        # Bob may not allow anyone (he is no owner)
        assert "Only the owner" in await say(shop, bob, "/allow 302")

        # a flood: Bob's 3 orders a minute are answered, one "slow down", then silence; no handler fails
        clock.advance(seconds=61)  # (his refused /buy of a minute ago no longer counts)
        answers = [await say(shop, bob, "/buy GAME 1") for _ in range(8)]
        assert sum("Order summary" in (a or "") for a in answers) == 3
        assert sum("Too many orders" in (a or "") for a in answers) == 1
        assert answers[4:] == [None] * 4
        # a minute later Bob is answered again
        clock.advance(seconds=61)
        assert "Order summary" in await say(shop, bob, "/buy GAME 1")
        assert await wallet(shop) == 5000  # quotes charge nothing


async def test_only_merchants_link_groups_and_merchant_commands_check_their_arguments(
        api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        boss, owner, bob, _ = await reseller_group(shop)
        assert "Only the shop&#x27;s merchants" in await say(shop, owner, "/unlinkgroup")
        assert "Only the shop&#x27;s merchants" in await say(shop, bob, "/linkgroup 300")
        # non-merchants in private: refused (and audited) like any merchant command
        assert "not allowed" in (await say(shop, bob, "/reseller add 301", in_group=False)).lower()
        assert "/reseller add USER" in await say(shop, boss, "/reseller add bob x", in_group=False)
        assert "already owns" in await say(shop, boss, "/reseller add 300", in_group=False)
        assert "No reseller nobody" in await say(shop, boss, "/wallet nobody", in_group=False)
        assert "/wallet USER" in await say(shop, boss, "/wallet 300 -5", in_group=False)
        assert "0 to 100" in await say(shop, boss, "/reseller tier 300 150", in_group=False)
        assert "Saved" in await say(shop, boss, "/reseller off 300", in_group=False)
        assert "suspended" in await say(shop, bob, "/buy GAME 1")
        # linking in private by chat id, unlinking in the group
        assert "Group -1002 now orders for" in await say(shop, boss, "/linkgroup 300 -1002", in_group=False)
        assert "no longer linked" in await say(shop, boss, "/unlinkgroup")
        assert "not linked" in await say(shop, bob, "/buy GAME 1")


async def test_the_summary_speaks_chinese_to_a_chinese_member(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        await shop.stock(3)
        await reseller_group(shop)
        li = api.user(303, "Li", language_code="zh-hans", username="li")
        await say(shop, li, "/buy GAME 1")
        assert "@li" in await say(shop, api.user(OWNER, "Olga", username="olga"), "/allow @li")
        text = await say(shop, li, "/buy GAME 1")
        assert "订单确认" in text and "¥9.00" in text
