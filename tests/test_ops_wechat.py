"""/metrics after a WeChat purchase: the callback's messages and WeChat Pay's notice are counted, and neither the
buyer's openid nor the code appears anywhere in the scrape."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_storefront import buy_game
from tests.wechat_harness import APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop

OPENID = "o-metrics-7f3a9c"


@pytest.fixture
async def wx_api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@pytest.fixture
async def wx_pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
    yield fake
    await fake.stop()


async def test_given_a_wechat_purchase_then_metrics_count_it_without_the_openid_or_the_code(
        wx_api: FakeWeChatAPI, wx_pay: FakeWeChatPay, tmp_path: Path) -> None:
    async with WeChatShop(wx_api, tmp_path, pay=wx_pay) as shop:
        codes = await shop.stock(2)
        order_id = await buy_game(shop, OPENID)
        assert (await shop.pay_notice(order_id, OPENID))[0] == 200
        await shop.idle()
        assert any(codes[0] in t for t in wx_api.texts(OPENID))
        metrics = shop.app.metrics
        assert (metrics.value("store_updates_total", channel="wechat", via="callback") or 0) >= 4
        assert metrics.value("store_payments_total", provider="wechat_pay", outcome="delivered") == 1
        assert metrics.value("store_deliveries_total", channel="wechat") == 1
        scrape = metrics.render().decode()
        assert OPENID not in scrape and codes[0] not in scrape and order_id not in scrape
