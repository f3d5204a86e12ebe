"""The WeChat chat storefront on WeChat Pay API v3 (`wechat.pay.version: 3`): the store process built by the
composition root (bots/wechat/wiring.py picks the v3 gateway and mounts its notify route), a buyer browsing in
the chat, the Native QR code made through wechatpayv3 against the fake pay server, the v3 notice posted by the
fake to /wechat/pay/notify, the code delivered once by customer-service message; on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.wechat.pay_v3 import WeChatPayV3Gateway
from config.settings import Resellers
from core.models import Buyer
from jobs.scheduler import build_scheduler
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_pay import read_qr
from tests.test_wechat_pay_v3 import APIV3_KEY, v3_pay_settings
from tests.test_wechat_storefront import ANN, buy_game
from tests.wechat_harness import APPID, MCH_ID, SECRET, WeChatShop

RES = "o-reseller"


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


async def test_a_wallet_top_up_on_v3_credits_once_and_goes_back_through_a_v3_refund(api, pay, tmp_path: Path) -> None:
    shop = WeChatShop(api, tmp_path, wechat={"pay": v3_pay_settings(pay, tmp_path)})
    shop.settings = shop.settings.model_copy(update={"resellers": Resellers.model_validate(
        {"topup_choices": [{"amount": 20_000}]})})
    async with shop:
        desk = shop.app.shop.resellers
        r = await desk.create("华南代理")
        t = await desk.start_topup(r, Buyer("wechat", RES), 20_000, "wechat_pay")
        url = await shop.app.shop.gateways["wechat_pay"].create_native_topup(t, "top-up")
        (native,) = pay.requests_to("/v3/pay/transactions/native")
        assert native["out_trade_no"] == t.id and native["amount"]["total"] == 20_000 and url.startswith("weixin://")
        pay.notify_target = shop.url + "/wechat/pay/notify"
        notice = pay.v3_notice(t.id, openid=RES)
        assert await asyncio.gather(*(pay.send(*notice) for _ in range(4))) == [(204, "")] * 4
        assert (await desk.get(r.id)).balance == 20_000 == await desk.ledger_sum(r.id)
        await desk.refund_topup(t.id, actor="cli")
        await shop.idle()
        (refund,) = pay.refunds()
        txn = pay.trades[t.id].transaction_id
        assert (refund["transaction_id"], refund["out_refund_no"], refund["refund_fee"]) == (txn, f"R{txn}", "20000")
        assert (await desk.get(r.id)).balance == 0


async def test_downloaded_platform_certificates_are_kept_in_platform_cert_dir(api, pay, tmp_path: Path) -> None:
    settings = v3_pay_settings(pay, tmp_path) | {"platform_cert_dir": str(tmp_path / "platform")}
    for i in range(2):  # two starts: the second finds the certificate on disk
        async with WeChatShop(api, tmp_path, wechat={"pay": settings}) as shop:
            await shop.stock(1, prefix=f"R{i}")
            await buy_game(shop, f"o-buyer-{i}")
    assert [p.name for p in (tmp_path / "platform").iterdir()] == [f"{pay.platform_serial}.pem"]
    assert len(pay.requests_to("/v3/certificates")) == 1
    assert len(pay.requests_to("/v3/pay/transactions/native")) == 2
