"""The /wechat callback, end to end: WeChat's side signs (and in safe mode encrypts) with wechatpy, posts real
HTTP to the store's aiohttp server, and reads the passive reply."""
from __future__ import annotations

import asyncio
import time

import pytest

from core.models import Buyer
from tests.fake_wechat_api import FakeWeChatAPI
from tests.wechat_harness import AES_KEY, APPID, SECRET, WeChatShop, option


@pytest.fixture
async def api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


async def test_url_verification_echoes_only_for_the_right_signature(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        assert await shop.wx.verify("echo-123") == (200, "echo-123")
        bad = shop.wx.signed_query(token="not-the-token")
        status, _ = await shop.wx.verify("echo-123", bad)
        assert status == 403


async def test_a_signed_text_gets_the_menu_in_chinese_with_numbered_options(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        reply = await shop.wx.text("o-ann", "你好")
        assert "欢迎光临 WX Shop" in reply
        assert "回复 1 🛍 商品列表" in reply
        assert "回复 2 📦 我的订单" in reply


async def test_safe_mode_decrypts_the_message_and_encrypts_the_reply(api, tmp_path):
    async with WeChatShop(api, tmp_path, wechat={"aes_key": AES_KEY}) as shop:
        assert shop.wx.crypto is not None
        reply = await shop.wx.text("o-ann", "菜单")
        assert "欢迎光临 WX Shop" in reply
        # A body encrypted right but with a wrong msg_signature is refused.
        query = shop.wx.signed_query()
        body = shop.wx.crypto.encrypt_message(shop.wx.text_xml("o-ann", "1"), query["nonce"], query["timestamp"])
        query.update(encrypt_type="aes", msg_signature="0" * 40)
        status, _ = await shop.wx.post_raw(body, query)
        assert status == 403


async def test_a_wrong_or_missing_signature_is_refused_and_nothing_is_processed(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        xml = shop.wx.text_xml("o-eve", "1")
        assert (await shop.wx.post_raw(xml, shop.wx.signed_query(token="guess")))[0] == 403
        assert (await shop.wx.post_raw(xml, {}))[0] == 403
        stale = shop.wx.signed_query(timestamp=int(time.time()) - 3600)  # a replay of an old message
        assert (await shop.wx.post_raw(xml, stale))[0] == 403
        assert shop.runtime.callback.handled == 0
        assert await shop.app.shop.my_orders(Buyer("wechat", "o-eve")) == []


async def test_xml_with_a_doctype_or_entity_is_rejected_before_parsing(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        xxe = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               "<xml><ToUserName>gh</ToUserName><FromUserName>o-eve</FromUserName><CreateTime>1</CreateTime>"
               "<MsgType>text</MsgType><Content>&x;</Content><MsgId>1</MsgId></xml>")
        status, body = await shop.wx.post_raw(xxe)
        assert status == 400
        assert b"root:" not in body
        laughs = '<!ENTITY lol "lol"><xml/>'
        assert (await shop.wx.post_raw(laughs))[0] == 400
        assert (await shop.wx.post_raw(b"<xml><not closed"))[0] == 400
        assert shop.runtime.callback.handled == 0


async def test_an_oversized_body_is_refused(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        big = shop.wx.text_xml("o-eve", "x" * (70 * 1024))
        status, _ = await shop.wx.post_raw(big)
        assert status == 413
        assert shop.runtime.callback.handled == 0


async def test_a_retried_msgid_runs_the_flow_once(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        await shop.stock(5)
        await shop.wx.text("o-ann", "菜单")
        menu = await shop.wx.text("o-ann", "商品")
        product = await shop.wx.text("o-ann", option(menu, "游戏点卡"))
        buy = shop.wx.text_xml("o-ann", option(product, "购买"), msg_id=424242)
        # WeChat re-sends while the first copy is still being handled, then once more after it was answered.
        first, second = await asyncio.gather(shop.wx.post(buy), shop.wx.post(buy))
        third = await shop.wx.post(buy)
        assert first == second == third
        assert "订单" in first[1]
        await shop.idle()
        assert len(await shop.order_ids("o-ann")) == 1


async def test_events_are_deduplicated_by_sender_and_create_time(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        xml = shop.wx.event_xml("o-ann", "CLICK", "help", create_time=1_700_000_000)
        handled = shop.runtime.callback.handled
        a = await shop.wx.post(xml)
        b = await shop.wx.post(xml)
        assert a == b and "帮助" in a[1]
        assert shop.runtime.callback.handled == handled + 1


async def test_two_hundred_users_at_once_each_get_their_own_answer_quickly(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        async def one(i: int) -> tuple[float, str]:
            start = time.perf_counter()
            reply = await shop.wx.text(f"o-user{i}", "帮助")
            return time.perf_counter() - start, reply
        results = await asyncio.gather(*(one(i) for i in range(200)))
        assert all("帮助" in reply for _, reply in results)
        assert max(t for t, _ in results) < 4.0  # far inside WeChat's 5 seconds


async def test_a_reply_slower_than_the_budget_follows_as_a_customer_service_message(api, tmp_path):
    async with WeChatShop(api, tmp_path, budget=0) as shop:
        reply = await shop.wx.text("o-ann", "帮助")
        assert reply == ""  # "success": WeChat shows nothing and does not retry
        await shop.idle()
        texts = api.texts("o-ann")
        assert len(texts) == 1 and "帮助" in texts[0]
