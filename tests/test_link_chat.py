"""Linking a WeChat and a Telegram account in the chats, end to end: one store serving both channels, WeChat's side
posting signed XML to /wechat (the fake WeChat API takes the replies), Telegram's updates polled by the real
library (aiogram or python-telegram-bot) from the fake Bot API. `/link` in one chat gives a code, `/link CODE` in
the other links them; then a limit reached on Telegram refuses the WeChat order, the phone bound on Telegram lets
WeChat buy a phone-only product, and a ban of one refuses the other. The core's rules are tests/test_links.py."""
from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bots.http import HttpServer
from core.links import FAILURES_PER_HOUR
from core.models import Buyer
from core.supply import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer
from tests.telegram_harness import Shopfront
from tests.wechat_harness import APPID, SECRET, option
from tests.wechat_harness import TOKEN as WX_TOKEN

CATALOG = [
    {"sku": "LIM", "title": {"en": "Limited card", "zh_CN": "限购卡"}, "price": 1000, "stars": 70,
     "rules": {"per_buyer": 1}},
    {"sku": "VIP", "title": {"en": "Video VIP", "zh_CN": "视频会员"}, "price": 1500, "stars": 90,
     "rules": {"phone_required": True}},
]
CODE = re.compile(r"/link ([A-Z0-9]{4}-[A-Z0-9]{4})")
ANN_WX = "o-ann"


@pytest.fixture
async def wx_api() -> AsyncIterator[FakeWeChatAPI]:
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@asynccontextmanager
async def both_chats(api: FakeBotAPI, wx_api: FakeWeChatAPI, tmp_path: Path,
                     library: str) -> AsyncIterator[tuple[Shopfront, WeChatServer]]:
    """One store on Telegram (polling the fake Bot API) and WeChat (its /wechat callback on a local port)."""
    wechat = {"appid": APPID, "token": WX_TOKEN, "secret": SECRET, "api_base": wx_api.base}
    async with Shopfront(api, tmp_path, library=library, extra={"catalog": CATALOG, "wechat": wechat}) as shop:
        server = HttpServer("127.0.0.1", 0)
        runtime = shop.app.add_wechat(server)
        await runtime.start()
        await server.start()
        wx = WeChatServer(f"http://127.0.0.1:{server.port}/wechat", WX_TOKEN, APPID)
        await wx.__aenter__()
        try:
            for sku in ("LIM", "VIP"):
                await import_codes(shop.app.db.uow, shop.app.vault, shop.app.clock, sku,
                                   [f"{sku}-{i}\n".encode() for i in range(5)])
            yield shop, wx
        finally:
            await wx.__aexit__()
            await server.stop()
            await runtime.stop()


async def tg_text(shop: Shopfront, user: dict, text: str) -> str:
    """What the bot answers a typed message (all its messages to that chat, joined)."""
    mark = shop.api.mark()
    await shop.send(shop.api.message_update(user, text))
    return "\n".join(c.params.get("text", "") for c in shop.api.calls_since(mark, "sendMessage")
                     if c.params.get("chat_id") == user["id"])


async def tg_tap(shop: Shopfront, user: dict, data: str) -> list:
    mark = shop.api.mark()
    await shop.send(shop.api.callback_update(user, data, shop.api.last_message(user["id"]) or {
        "message_id": 1, "date": 0, "chat": {"id": user["id"], "type": "private"}}))
    return [c for c in shop.api.calls_since(mark) if c.params.get("chat_id") == user["id"]]


_CLICKS = itertools.count(int(time.time()) + 1)


async def click(wx: WeChatServer, openid: str, key: str) -> str:
    """A menu click (a flow action id): each with its own CreateTime, or the store would take a second click within
    the same second for WeChat re-sending the first and answer it the same."""
    status, reply = await wx.post(wx.event_xml(openid, "CLICK", key, create_time=next(_CLICKS)))
    assert status == 200, status
    return reply


async def _pid(shop: Shopfront, sku: str) -> int:
    p = await shop.app.shop.product_by_sku(sku)
    assert p is not None
    return p.id


async def test_given_a_wechat_link_code_sent_to_the_telegram_bot_then_limits_phone_orders_and_bans_are_shared(
        api: FakeBotAPI, wx_api: FakeWeChatAPI, tmp_path: Path, library: str) -> None:
    async with both_chats(api, wx_api, tmp_path, library) as (shop, wx):
        ann_tg = api.user(701, "Ann")
        await wx.subscribe(ANN_WX)
        asked = await wx.text(ANN_WX, "/link")  # WeChat: a one-time code
        assert "10 分钟" in asked
        code = CODE.search(asked).group(1)

        done = await tg_text(shop, ann_tg, f"/link {code}")  # the same person, on Telegram
        assert "Linked" in done and "1 other account" in done
        await shop.app.shop.dispatcher.drain()
        assert any("刚刚使用您获取的关联码" in t for t in wx_api.texts(ANN_WX))  # WeChat is told of it

        # Telegram takes the one unit per person (held for its Stars invoice) ...
        invoice = [c for c in await tg_tap(shop, ann_tg, f"buy:{await _pid(shop, 'LIM')}:1")
                   if c.method == "sendInvoice"]
        assert len(invoice) == 1
        # ... so the same person on WeChat is refused, naming the rule.
        refused = await click(wx, ANN_WX, f"buy:{await _pid(shop, 'LIM')}:1")
        assert "限购:每人最多 1 件(您还可买 0 件)" in refused

        # A phone bound on Telegram (the user's own contact) lets WeChat buy a phone-only product.
        assert "手机号" in await click(wx, ANN_WX, f"buy:{await _pid(shop, 'VIP')}:1")  # not yet
        await shop.send(api.message_update(ann_tg, contact=api.contact("+8613800138000", user_id=701)))
        held = await click(wx, ANN_WX, f"buy:{await _pid(shop, 'VIP')}:1")
        assert "库存已为您锁定" in held

        # My orders on WeChat lists the Telegram order, marked, and opens it without codes or payment.
        orders = await wx.text(ANN_WX, "订单")
        assert "· Telegram" in orders and "视频会员" in orders
        tg_order = next(o for o in await shop.app.shop.my_orders(Buyer("telegram", "701")) if o.buyer.channel ==
                        "telegram")
        page = await click(wx, ANN_WX, f"o:{tg_order.id}")
        assert "由您关联的Telegram账号购买" in page and "查看卡密" not in page

        # A ban of the Telegram account refuses the WeChat one too.
        await shop.app.shop.risk.ban("user", "telegram:701", Buyer("telegram", "1"), "chargebacks")
        banned = await click(wx, ANN_WX, f"buy:{await _pid(shop, 'VIP')}:1")
        assert "此订单无法受理" in banned


async def test_given_a_telegram_code_typed_after_a_wechat_keyword_then_they_link_and_wrong_guesses_are_stopped(
        api: FakeBotAPI, wx_api: FakeWeChatAPI, tmp_path: Path) -> None:
    async with both_chats(api, wx_api, tmp_path, "aiogram") as (shop, wx):
        ann_tg, eve_tg = api.user(702, "Ann"), api.user(703, "Eve")
        await shop.send(api.message_update(ann_tg, "/start"))
        menu_link = next(c for c in await tg_tap(shop, ann_tg, "lk"))
        assert "Link your accounts" in menu_link.params["text"]
        issued = [c for c in await tg_tap(shop, ann_tg, "lg") if c.method == "sendMessage"]
        text = issued[0].params["text"]
        assert "<tg-spoiler>" in text and issued[0].params.get("protect_content")
        code = CODE.search(text).group(1)

        # Eve guesses on WeChat: each wrong code is refused and counted; then even the right one is refused.
        eve_wx = "o-eve"
        await wx.subscribe(eve_wx)
        wrong = ("ABCD-EFGH" if code != "ABCD-EFGH" else "ABCD-EFGJ")
        first = await wx.text(eve_wx, f"关联 {wrong}")
        assert "关联码错误" in first and f"还可尝试 {FAILURES_PER_HOUR - 1} 次" in first
        for _ in range(FAILURES_PER_HOUR - 1):
            await wx.text(eve_wx, f"/link {wrong}")
        assert "操作过于频繁" in await wx.text(eve_wx, f"/link {code}")
        assert await shop.app.shop.links.linked(Buyer("wechat", eve_wx)) == [Buyer("wechat", eve_wx)]

        # Ann on WeChat: "关联" then "I have a code", then the code typed as a plain message.
        intro = await wx.text(ANN_WX, "关联")
        ask = await wx.text(ANN_WX, option(intro, "我有关联码"))
        assert "请发送您在另一个聊天中获得的关联码" in ask
        linked = await wx.text(ANN_WX, code.lower().replace("-", " "))
        assert "关联成功" in linked
        assert set(await shop.app.shop.links.linked(Buyer("telegram", "702"))) == {
            Buyer("telegram", "702"), Buyer("wechat", ANN_WX)}

        # Used once: Eve's Telegram account cannot use it again, and nothing links.
        reused = await tg_text(shop, eve_tg, f"/link {code}")
        assert "wrong, expired or already used" in reused
        assert await shop.app.shop.links.linked(Buyer("telegram", "703")) == [Buyer("telegram", "703")]

        # Unlink from Telegram, after a confirmation: WeChat's My orders is its own again.
        ask = next(c for c in await tg_tap(shop, ann_tg, "lu") if c.method == "sendMessage")
        assert "Unlink this account" in ask.params["text"]
        done = next(c for c in await tg_tap(shop, ann_tg, "lux") if c.method == "sendMessage")
        assert "Unlinked from 1 account" in done.params["text"]
        assert await shop.app.shop.links.linked(Buyer("wechat", ANN_WX)) == [Buyer("wechat", ANN_WX)]
