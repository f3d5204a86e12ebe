"""The /wechat callback, end to end: WeChat's side signs (and in safe mode encrypts) with wechatpy, posts real
HTTP to the store's aiohttp server, and reads the passive reply. The harness's store is in safe mode;
`PLAIN` makes one in plain mode."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest
from wechatpy.utils import WeChatSigner

from core.models import Buyer
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_storefront import buy_game
from tests.wechat_harness import (
    ADMIN,
    AES_KEY,
    APPID,
    MCH_ID,
    PAY_KEY,
    SECRET,
    WeChatShop,
    opened,
    option,
    price,
    sealed,
)

PLAIN = {"aes_key": ""}


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
    async with WeChatShop(api, tmp_path, wechat=PLAIN) as shop:
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
    async with WeChatShop(api, tmp_path, wechat=PLAIN) as shop:
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


async def test_two_hundred_users_at_once_each_get_their_own_answer_once(api, tmp_path):
    """Each gets the help text once: as the reply, or (a reply slower than the budget on a busy machine) as the
    customer-service message that follows. How fast is bench/wechat.py's business, not a test's."""
    async with WeChatShop(api, tmp_path) as shop:
        replies = await asyncio.gather(*(shop.wx.text(f"o-user{i}", "帮助") for i in range(200)))
        await shop.idle()
        for i, reply in enumerate(replies):
            followed = api.texts(f"o-user{i}")
            assert ("帮助" in reply and followed == []) or (reply == "" and len(followed) == 1
                                                             and "帮助" in followed[0])


async def test_a_reply_slower_than_the_budget_follows_as_a_customer_service_message(api, tmp_path):
    async with WeChatShop(api, tmp_path, budget=0) as shop:
        reply = await shop.wx.text("o-ann", "帮助")
        assert reply == ""  # "success": WeChat shows nothing and does not retry
        await shop.idle()
        texts = api.texts("o-ann")
        assert len(texts) == 1 and "帮助" in texts[0]


# -- forged and replayed messages ----------------------------------------------------------------------------


async def test_in_safe_mode_a_plaintext_post_is_refused_and_nothing_happens(api, tmp_path, caplog):
    async with WeChatShop(api, tmp_path) as shop:
        forged = shop.wx.text_xml(ADMIN, "/product GAME price 1")  # signature right: the URL came from a log
        caplog.set_level(logging.WARNING)
        for mode in ({}, {"encrypt_type": "raw"}, {"encrypt_type": "aes"}):  # the request cannot pick the mode
            status, body = await shop.wx.post_raw(forged, {**shop.wx.signed_query(), **mode})
            assert (status, body) == (403, b"safe mode: only encrypted messages are accepted")
        assert shop.runtime.callback.handled == 0
        assert await price(shop, "GAME") == 1000
        refusals = [r.getMessage() for r in caplog.records if "safe mode" in r.getMessage()]
        assert refusals and all(r.levelno == logging.WARNING for r in caplog.records if "safe mode" in r.getMessage())
        assert not any("price" in m or ADMIN in m for m in (r.getMessage() for r in caplog.records))


async def test_a_forged_msg_signature_is_refused_and_nothing_happens(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        body, query = sealed(shop.wx, shop.wx.text_xml(ADMIN, "/product GAME price 1"))
        other = sealed(shop.wx, shop.wx.text_xml("o-ann", "你好"))[1]  # a genuine msg_signature of another body
        for msg_signature in (other["msg_signature"], "0" * 40, "签名" * 20, ""):
            status, _ = await shop.wx.post_raw(body, {**query, "msg_signature": msg_signature})
            assert status == 403
        assert (await shop.wx.post_raw(body, {**query, "signature": "é" * 40}))[0] == 403
        assert shop.runtime.callback.handled == 0
        assert await price(shop, "GAME") == 1000


async def test_a_stale_future_or_garbled_timestamp_is_refused_even_when_signed(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        xml = shop.wx.text_xml("o-ann", "你好")
        now = int(time.time())
        for stamp in (now - 11 * 60, now + 11 * 60):
            body, query = sealed(shop.wx, xml, shop.wx.signed_query(timestamp=stamp))
            assert (await shop.wx.post_raw(body, query)) == (403, b"stale timestamp")
        body, query = sealed(shop.wx, xml, _signed_by_token(shop, "²²²", "1234567"))  # digits to isdigit()
        assert (await shop.wx.post_raw(body, query)) == (403, b"stale timestamp")  # not a 500
        assert shop.runtime.callback.handled == 0


def _signed_by_token(shop: WeChatShop, timestamp: str, nonce: str) -> dict[str, str]:
    signer = WeChatSigner()
    signer.add_data(shop.wx.token, timestamp, nonce)
    return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}


async def test_a_resend_with_the_same_timestamp_and_nonce_is_answered_success_and_handled_once(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        body, query = sealed(shop.wx, shop.wx.text_xml("o-ann", "你好"))
        status, raw = await shop.wx.post_raw(body, query)
        assert status == 200 and "欢迎光临" in opened(shop.wx, raw)
        # WeChat's re-send, should it keep the pair: "success" (nothing to complain about), handled once.
        assert await shop.wx.post_raw(body, query) == (200, b"success")
        assert shop.runtime.callback.handled == 1


async def test_a_replayed_message_is_refused_by_a_restarted_store(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        old_price = sealed(shop.wx, shop.wx.text_xml(ADMIN, "/product GAME price 900"))
        status, raw = await shop.wx.post_raw(*old_price)
        assert status == 200 and "GAME" in opened(shop.wx, raw)
        assert await price(shop, "GAME") == 900
    async with WeChatShop(api, tmp_path) as shop:  # restarted: nothing in memory, the same database
        assert "GAME" in await shop.wx.text(ADMIN, "/product GAME price 1200")
        # The captured request sent again (within the 10 minutes): refused, the old price does not come back.
        assert await shop.wx.post_raw(*old_price) == (200, b"success")
        assert shop.runtime.callback.handled == 1
        assert await price(shop, "GAME") == 1200


async def test_in_plain_mode_a_used_timestamp_and_nonce_carry_no_other_message(api, tmp_path):
    async with WeChatShop(api, tmp_path, wechat=PLAIN) as shop:
        url = shop.wx.signed_query()  # a genuine callback URL, as an access log shows it
        assert "欢迎光临" in opened(shop.wx, (await shop.wx.post_raw(shop.wx.text_xml("o-ann", "你好"), url))[1])
        # The signature covers no body: the same URL with another message as someone else is refused.
        status, raw = await shop.wx.post_raw(shop.wx.text_xml("o-bob", "订单"), url)
        assert (status, raw) == (200, b"success")
        assert shop.runtime.callback.handled == 1


async def test_two_store_processes_take_a_timestamp_and_nonce_once_between_them(api, tmp_path, db_url):
    async with WeChatShop(api, tmp_path, database=db_url) as one, \
            WeChatShop(api, tmp_path, database=db_url) as two:
        message = sealed(one.wx, one.wx.text_xml(ADMIN, "/product GAME price 900"))
        answers = await asyncio.gather(one.wx.post_raw(*message), two.wx.post_raw(*message))
        assert sorted(status for status, _ in answers) == [200, 200]
        assert sorted(raw == b"success" for _, raw in answers) == [False, True]
        assert one.runtime.callback.handled + two.runtime.callback.handled == 1


async def test_a_merchant_command_in_plain_mode_is_refused_with_how_to_turn_on_safe_mode(api, tmp_path):
    async with WeChatShop(api, tmp_path, wechat=PLAIN) as shop:
        reply = await shop.wx.text(ADMIN, "/product GAME price 1")
        assert "安全模式" in reply and "wechat.aes_key" in reply
        assert await price(shop, "GAME") == 1000
        assert "安全模式" in await shop.wx.text(ADMIN, "/stock")
        assert "无权操作" in await shop.wx.text("o-ann", "/stock")  # anyone else: not allowed, as ever
        async with shop.app.db.uow() as uow:
            refused = await uow.audit.latest("admin", f"wechat:{ADMIN}")
        assert [e.detail.get("refused") for e in refused] == ["plain_mode", "plain_mode"]


@pytest.fixture
async def pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
    yield fake
    await fake.stop()


async def test_in_plain_mode_a_buyer_gets_the_code_but_it_is_not_shown_again_in_a_reply(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay, wechat=PLAIN) as shop:
        codes = await shop.stock(2)
        order_id = await buy_game(shop)
        await shop.pay_notice(order_id, "o-ann")
        await shop.idle()
        assert any(codes[0] in t for t in api.texts("o-ann"))  # delivered to the buyer's own chat
        order_page = await shop.wx.text("o-ann", "1")
        again = await shop.wx.text("o-ann", option(order_page, "查看卡密"))
        assert "安全模式" in again and codes[0] not in again
        async with shop.app.db.uow() as uow:
            assert not [e for e in await uow.audit.for_order(order_id) if e.action == "reveal"]
