"""The WeChat chat storefront on WeChat Pay API v3 (`wechat.pay.version: 3`): the store process built by the
composition root (bots/wechat/wiring.py picks the v3 gateway and mounts its notify route), a buyer browsing in
the chat, the Native QR code made through wechatpayv3 against the fake pay server, the v3 notice posted by the
fake to /wechat/pay/notify, the code delivered once by customer-service message; on SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest

from bots.wechat.pay_v3 import WeChatPayV3Gateway
from jobs.scheduler import build_scheduler
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_pay import read_qr
from tests.test_wechat_pay_v3 import APIV3_KEY, v3_pay_settings
from tests.test_wechat_storefront import ANN, buy_game
from tests.wechat_harness import APPID, MCH_ID, SECRET, WeChatShop


@pytest.fixture
async def api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@pytest.fixture
async def pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, apiv3_key=APIV3_KEY).start()
    yield fake
    await fake.stop()


async def test_chat_buy_scan_pay_on_v3_delivers_the_code_once(api, pay, tmp_path: Path, db_url: str) -> None:
    async with WeChatShop(api, tmp_path, wechat={"pay": v3_pay_settings(pay, tmp_path)}, database=db_url) as shop:
        gateway = shop.runtime.gateway
        assert isinstance(gateway, WeChatPayV3Gateway) and gateway.name == "wechat_pay"
        assert shop.app.shop.gateways["wechat_pay"] is gateway  # the outbox refunds through it
        assert build_scheduler(shop.app.shop, gateway).get_job("reconcile-wechat-pay") is not None
        codes = await shop.stock(3)
        order_id = await buy_game(shop)
        (native,) = pay.requests_to("/v3/pay/transactions/native")
        assert native["out_trade_no"] == order_id and native["amount"]["total"] == 1000
        (image,) = api.images(ANN)
        assert read_qr(image) == pay.trades[order_id].code_url
        assert "请用微信扫描上方二维码" in api.texts(ANN)[-1]

        pay.notify_target = shop.url + "/wechat/pay/notify"
        notice = pay.v3_notice(order_id, openid=ANN)
        assert await pay.send(*notice) == (204, "")
        assert await pay.send(*notice) == (204, "")  # WeChat's repeat
        await shop.idle()
        delivered = [t for t in api.texts(ANN) if "已发货" in t]
        assert len(delivered) == 1 and codes[0] in delivered[0]
        # A v2 notice at the same path is refused: this store speaks v3.
        status, text = await pay.send({"Content-Type": "text/xml"}, b"<xml><return_code>SUCCESS</return_code></xml>")
        assert status == 400 and "v3" in text
