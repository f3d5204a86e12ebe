"""The WeChat storefront end to end: WeChat's side posts signed XML to the store's /wechat, the store talks to
the fake WeChat API (customer-service messages, media uploads) and the fake WeChat Pay server (unified orders)
through wechatpy's real HTTP clients, and WeChat Pay's signed notice arrives at /wechat/pay/notify."""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bots.wechat.client import WeComRobot
from core.clock import FakeClock
from core.models import Buyer
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_pay import read_qr
from tests.wechat_harness import ADMIN, APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop, option

ANN = "o-ann"


@pytest.fixture
async def api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@pytest.fixture
async def pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
    yield fake
    await fake.stop()


async def buy_game(shop: WeChatShop, openid: str = ANN) -> str:
    """subscribe -> catalogue -> product -> buy; returns the held order's id."""
    menu = await shop.wx.subscribe(openid)
    catalog = await shop.wx.text(openid, option(menu, "商品列表"))
    product = await shop.wx.text(openid, option(catalog, "游戏点卡"))
    assert "回复 1 购买" in product
    held = await shop.wx.text(openid, "1")
    assert "库存已为您锁定 15 分钟" in held and "¥10.00" in held
    await shop.idle()
    orders = await shop.order_ids(openid)
    assert len(orders) == 1
    return orders[0]


async def test_browse_buy_scan_pay_and_get_the_code_in_the_chat(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        codes = await shop.stock(3)
        order_id = await buy_game(shop)
        # The QR code: a unified order for this order, drawn, uploaded as media, sent as an image.
        unified = pay.requests_to("/pay/unifiedorder")
        assert [u["out_trade_no"] for u in unified] == [order_id] and unified[0]["total_fee"] == "1000"
        images = api.images(ANN)
        assert len(images) == 1 and read_qr(images[0]) == pay.trades[order_id].code_url
        scan = api.texts(ANN)[-1]
        assert "请用微信扫描上方二维码" in scan and "¥10.00" in scan and "15 分钟" in scan
        # WeChat Pay's notice: the code goes out by customer-service message, once, also for repeats.
        assert (await shop.pay_notice(order_id, ANN))[0] == 200
        assert (await shop.pay_notice(order_id, ANN))[0] == 200
        await shop.idle()
        delivered = [t for t in api.texts(ANN) if "已发货" in t]
        assert len(delivered) == 1 and codes[0] in delivered[0]
        assert "回复 1 📦 我的订单" in delivered[0]
        # "1" now means the delivery's first option (the order); the code can be shown again from there.
        order_page = await shop.wx.text(ANN, "1")
        assert order_id in order_page and "已发货" in order_page
        again = await shop.wx.text(ANN, option(order_page, "查看卡密"))
        assert codes[0] in again


async def test_a_closed_48_hour_window_keeps_the_code_until_the_buyer_writes(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        codes = await shop.stock(10)
        order_id = await buy_game(shop)
        api.close_window(ANN)  # 45015: the buyer has not written for 48 hours
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        assert [c.errcode for c in api.refused("message/custom/send")] == [45015]
        assert not any(codes[0] in t for t in api.texts(ANN))
        assert "已发货" in await shop.wx.text(ANN, "订单")  # My orders has it meanwhile (status delivered)
        merchant = api.texts(ADMIN)
        assert any(order_id in t and "窗口已关闭" in t for t in merchant)
        # The buyer writes: the window is open again and the code follows the reply.
        api.open_window(ANN)
        reply = await shop.wx.text(ANN, "你好")
        assert "欢迎光临" in reply
        await shop.idle()
        sent = [t for t in api.texts(ANN) if codes[0] in t]
        assert len(sent) == 1 and "已发货" in sent[0]
        await shop.wx.text(ANN, "你好")  # held codes go out once
        await shop.idle()
        assert len([t for t in api.texts(ANN) if codes[0] in t]) == 1


async def test_quota_used_45047_also_keeps_the_code(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        codes = await shop.stock(10)
        order_id = await buy_game(shop)
        api.fail_next("message/custom/send", 45047)
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        assert not any(codes[0] in t for t in api.texts(ANN))
        await shop.wx.text(ANN, "菜单")
        await shop.idle()
        assert len([t for t in api.texts(ANN) if codes[0] in t]) == 1


async def test_no_wechat_pay_order_gets_cancelled_and_the_buyer_is_told(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        await shop.stock(3)
        api.fail_next("media/upload", 40004)  # the QR image cannot be uploaded
        order_id = await buy_game(shop)
        assert api.images(ANN) == []
        assert any("无法发起微信支付" in t and order_id in t for t in api.texts(ANN))
        assert (await shop.app.shop.stock())[0].held == 0


async def test_english_when_chosen_and_keywords_in_either_language(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        languages = await shop.wx.text(ANN, "语言")
        menu = await shop.wx.text(ANN, option(languages, "English"))
        assert "Reply 1: 🛍 Catalogue" in menu or "Reply 1:" in menu
        assert "欢迎" not in menu
        help_en = await shop.wx.text(ANN, "帮助")  # a Chinese keyword, answered in the buyer's language
        assert "Help" in help_en and "Reply 1:" in help_en


async def test_custom_menu_clicks_are_flow_actions(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        await shop.stock(1)
        assert "游戏点卡" in await shop.wx.click(ANN, "cat")
        assert "我的订单" in await shop.wx.click(ANN, "os:0")
        garbage = await shop.wx.click(ANN, "p:999999:xx")
        assert "没有理解" in garbage and "回复 1" in garbage


async def test_merchant_commands_in_text_and_refusal_for_everyone_else(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        await shop.stock(3)
        order_id = await buy_game(shop)
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        stock = await shop.wx.text(ADMIN, "/stock")
        assert "库存" in stock and "GAME" in stock
        assert order_id in await shop.wx.text(ADMIN, "/orders")
        detail = await shop.wx.text(ADMIN, f"/order {order_id}")
        assert order_id in detail and "WX-GAME-0000" not in detail  # codes are never shown to merchants
        assert "无权操作" in await shop.wx.text(ANN, "/stock")
        assert "无权操作" in await shop.wx.text(ANN, f"/refund {order_id}")
        assert "我的订单" in await shop.wx.text(ANN, "/orders")  # a buyer's /orders is their own list
        assert "Telegram" in await shop.wx.text(ADMIN, "/import GAME")
        await shop.wx.text(ADMIN, f"/refund {order_id}")
        await shop.idle()
        assert len(pay.refunds()) == 1
        assert any("已退回" in t and order_id in t for t in api.texts(ANN))


async def test_low_stock_alert_goes_to_the_wecom_robot_and_the_merchant(api, pay, tmp_path):
    hook = f"{api.base}/cgi-bin/webhook/send?key=robot-key"
    async with WeChatShop(api, tmp_path, pay=pay, wechat={"wecom_webhook": hook}) as shop:
        await shop.stock(2)
        order_id = await buy_game(shop)
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        assert any("GAME" in t and "仅剩 1" in t for t in api.robot_texts())
        assert any("GAME" in t and "仅剩 1" in t for t in api.texts(ADMIN))


async def test_one_token_for_many_concurrent_sends_and_the_event_loop_stays_free(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        api.delay = 0.2
        sends = [shop.runtime.api.send_text(f"o-{i}", "hi") for i in range(12)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while loop.time() - start < 0.3:
                ticks += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(ticker(), *sends)
        assert api.token_fetches == 1
        assert len(api.sends()) == 12
        assert ticks >= 10  # the loop kept running while wechatpy waited in its threads
        # A token made invalid elsewhere (each fetch invalidates the last) is fetched again and the call retried.
        api.token = "invalidated"
        await shop.runtime.api.send_text("o-x", "again")
        assert api.token_fetches == 2 and len(api.sends("o-x")) == 1


async def test_wechat_buyers_and_merchants_are_told_apart_by_openid(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        await shop.wx.text(ANN, "你好")
        cust = await shop.app.shop.customer(Buyer("wechat", ANN))
        assert cust.language == "zh_CN"


async def test_codes_and_the_access_token_never_reach_the_log(api, pay, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        codes = await shop.stock(3)
        order_id = await buy_game(shop)
        api.fail_next("message/custom/send", 45047)  # the held-back path logs too
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        await shop.wx.text(ANN, "菜单")
        await shop.idle()
        assert any(codes[0] in t for t in api.texts(ANN))
        await shop.wx.text(ANN, "1")  # the order
        await shop.wx.text(ANN, "1")  # show the codes again: in the passive reply
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the store did log (DEBUG included)
    assert not any(c in logged for c in codes)
    assert api.token not in logged and "access_token=" not in logged


async def test_following_by_a_scene_qr_code_keeps_the_scene_and_shows_the_menu(api, tmp_path):
    async with WeChatShop(api, tmp_path) as shop:
        reply = await shop.wx.subscribe(ANN, scene="promo42")
        assert "欢迎光临" in reply and "回复 1" in reply
        cust = await shop.app.shop.customer(Buyer("wechat", ANN))
        assert cust.state.get("start_payload") == "promo42"
        assert await shop.wx.post(shop.wx.event_xml(ANN, "unsubscribe")) == (200, "")  # nothing to say


async def test_opening_a_held_order_again_sends_its_qr_code_again(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        await shop.stock(3)
        order_id = await buy_game(shop)
        orders = await shop.wx.text(ANN, "订单")
        held = await shop.wx.text(ANN, option(orders, order_id))
        assert "库存已为您锁定" in held
        await shop.idle()
        images = api.images(ANN)
        assert len(images) == 2 and read_qr(images[0]) == read_qr(images[1])  # the same trade, the same code
        assert len(pay.trades) == 1


async def test_the_wecom_robot_gets_at_most_20_messages_a_minute(api):
    robot = WeComRobot(f"{api.base}/cgi-bin/webhook/send?key=robot-key")
    try:
        sends = [asyncio.ensure_future(robot.send(f"alert {i}")) for i in range(21)]
        await api.wait_for(lambda: len(api.robot_texts()) >= 20)
        await asyncio.sleep(0.5)
        assert len(api.robot_texts()) == 20  # the 21st waits for the bucket to drain (about 3 s)
        for s in sends:
            s.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
    finally:
        await robot.close()


async def test_a_buyer_who_unfollowed_is_not_written_to_again_and_keeps_the_code(api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        codes = await shop.stock(10)  # above the low-stock line: no merchant alert can take the failure meant for Ann
        order_id = await buy_game(shop)
        api.fail_next("message/custom/send", 43004)  # require subscribe: the buyer unfollowed
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        async with shop.app.db.uow() as uow:
            assert await uow.outbox.pending_count() == 0  # given up, not retried
        assert len(api.refused("message/custom/send")) == 1
        assert not any(codes[0] in t for t in api.texts(ANN))
        assert (await shop.app.shop.reveal(order_id, Buyer("wechat", ANN)))[2] == [codes[0]]  # in My orders


LONG_CATALOG = [{"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000, "max_qty": 4}]


async def buy_four_long_codes(shop: WeChatShop) -> tuple[str, list[str]]:
    """Four codes of 490 characters: their delivery takes more than one customer-service message."""
    codes = await shop.stock(6, prefix="L" * 480)
    menu = await shop.wx.subscribe(ANN)
    page = await shop.wx.text(ANN, option(await shop.wx.text(ANN, option(menu, "商品列表")), "游戏点卡"))
    for _ in range(3):
        page = await shop.wx.text(ANN, option(page, "+1"))
    await shop.wx.text(ANN, option(page, "购买"))
    await shop.idle()
    [order_id] = await shop.order_ids(ANN)
    return order_id, codes


async def test_given_a_delivery_in_several_messages_when_the_second_fails_once_then_each_part_arrives_once(
        api, pay, tmp_path):
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    async with WeChatShop(api, tmp_path, pay=pay, clock=clock, extra={"catalog": LONG_CATALOG}) as shop:
        order_id, codes = await buy_four_long_codes(shop)
        before = len(api.texts(ANN))
        api.fail_next("message/custom/send", -1, after=1, to=ANN)  # "system busy" for the delivery's 2nd message
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        assert [c.errcode for c in api.refused("message/custom/send")] == [-1]
        clock.advance(seconds=11)  # the failed delivery's backoff
        await shop.idle()
        texts = api.texts(ANN)[before:]
        assert len(texts) >= 2 and "已发货" in texts[0]
        assert [sum(t.count(c) for t in texts) for c in codes[:4]] == [1, 1, 1, 1]  # every code once, none twice


async def test_given_the_window_closes_in_the_middle_of_a_delivery_then_only_the_rest_follows_the_buyer_s_next_message(
        api, pay, tmp_path):
    async with WeChatShop(api, tmp_path, pay=pay, extra={"catalog": LONG_CATALOG}) as shop:
        order_id, codes = await buy_four_long_codes(shop)
        before = len(api.texts(ANN))
        api.fail_next("message/custom/send", 45015, after=1, to=ANN)  # the window closes after the 1st part
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        first = api.texts(ANN)[before:]
        assert len(first) == 1 and "已发货" in first[0] and codes[3] not in first[0]  # the 2nd part was refused
        await shop.wx.text(ANN, "你好")  # the buyer writes: the rest of the codes follow the reply
        await shop.idle()
        texts = api.texts(ANN)[before:]
        assert [sum(t.count(c) for t in texts) for c in codes[:4]] == [1, 1, 1, 1]
