"""/report and /export for a WeChat merchant end to end (wechatpy-signed XML in, the fake WeChat API out, a real
SQLite store): the figures come as the reply, the charts follow as customer-service images (uploaded PNGs); the
buyer's own browsing shows in the funnel; /export answers where exports are, and sends no file."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_storefront import ANN, buy_game
from tests.wechat_harness import ADMIN, APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop


@pytest.fixture
async def api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@pytest.fixture
async def pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
    yield fake
    await fake.stop()


async def test_report_replies_with_the_figures_then_sends_the_charts_as_images(api, pay, tmp_path) -> None:
    async with WeChatShop(api, tmp_path, pay=pay) as shop:
        await shop.stock(3)
        order_id = await buy_game(shop)
        await shop.pay_notice(order_id, ANN)
        await shop.idle()
        reply = await shop.wx.text(ADMIN, "/report")
        assert "销售报表" in reply and "已付款订单：1" in reply and "¥10.00" in reply
        assert "转化漏斗：商品浏览 1 → 下单 1 → 已付款 1 → 已发货 1" in reply
        assert "微信：1 笔" in reply
        await shop.idle()
        images = api.images(ADMIN)
        assert len(images) == 3
        for png in images:
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            with Image.open(io.BytesIO(png)) as img:
                assert img.size == (800, 450)
        assert not api.images(ANN)[1:]  # the buyer got their payment QR code, nothing of the merchant's


async def test_export_in_wechat_points_to_telegram_and_the_console(api, tmp_path) -> None:
    async with WeChatShop(api, tmp_path) as shop:
        uploads = len(api.sends())
        reply = await shop.wx.text(ADMIN, "/export 7d")
        assert "Telegram" in reply and "/console" in reply and "/export" in reply
        await shop.idle()
        assert len(api.sends()) == uploads and not api.images(ADMIN)
        assert "无权操作" in await shop.wx.text(ANN, "/export")  # a buyer: not allowed, as every merchant command
