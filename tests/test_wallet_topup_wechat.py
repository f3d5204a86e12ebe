"""Wallet top-ups by WeChat Pay: the reseller picks an amount in the WeChat chat, gets a Native QR code
for a unified order whose out_trade_no is the top-up, and WeChat Pay's signed notice credits the wallet exactly
once, however often and however concurrently WeChat sends it. Real wechatpy clients against the fake servers."""
from __future__ import annotations

import asyncio

import pytest

from config.settings import Resellers
from core.models import Buyer
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.test_wechat_pay import read_qr
from tests.wechat_harness import APPID, MCH_ID, PAY_KEY, SECRET, WeChatShop, option

RES = "o-reseller"


@pytest.fixture
async def api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


@pytest.fixture
async def pay():
    fake = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
    yield fake
    await fake.stop()


def wallet_shop(api, pay, tmp_path) -> WeChatShop:  # noqa: ANN001
    shop = WeChatShop(api, tmp_path, pay=pay)
    shop.settings = shop.settings.model_copy(update={"resellers": Resellers.model_validate(
        {"topup_choices": [{"amount": 20_000}, {"amount": 50_000, "stars": 3500}]})})
    return shop


async def test_a_reseller_scans_a_top_up_qr_and_repeated_notices_credit_once(api, pay, tmp_path):
    async with wallet_shop(api, pay, tmp_path) as shop:
        desk = shop.app.shop.resellers
        r = await desk.create("华南代理")
        await desk.bind_owner(r.id, Buyer("wechat", RES))
        # the reseller's menu has the wallet; it offers both amounts (WeChat Pay takes CNY)
        menu = await shop.wx.subscribe(RES)
        wallet = await shop.wx.text(RES, option(menu, "钱包"))
        assert "华南代理：余额 ¥0.00" in wallet and "充值 ¥200.00" in wallet and "充值 ¥500.00" in wallet
        await shop.wx.text(RES, option(wallet, "充值 ¥200.00"))
        await shop.idle()
        # a Native unified order for the top-up, its QR code sent as an image, the amount as text
        (unified,) = pay.requests_to("/pay/unifiedorder")
        topup_id = unified["out_trade_no"]
        assert topup_id.startswith("W") and unified["total_fee"] == "20000" and unified["trade_type"] == "NATIVE"
        (image,) = api.images(RES)
        assert read_qr(image) == pay.trades[topup_id].code_url
        assert "¥200.00" in api.texts(RES)[-1]
        # WeChat's notice, repeated and concurrent: every one gets SUCCESS, the wallet is credited once
        assert (await shop.pay_notice(topup_id, RES))[0] == 200
        body = pay.notify_xml(topup_id)

        async def post() -> int:
            async with shop.wx._session.post(shop.url + "/wechat/pay/notify", data=body) as resp:
                return resp.status

        assert await asyncio.gather(*[post() for _ in range(8)]) == [200] * 8
        await shop.idle()
        balance = (await desk.get(r.id)).balance
        assert balance == 20_000 == await desk.ledger_sum(r.id)
        assert [(e.kind, e.amount) for e in await desk.statement(r.id)] == [("topup", 20_000)]
        assert pay.refunds() == []
        # the wallet screen shows the new balance
        again = await shop.wx.text(RES, option(await shop.wx.text(RES, "/start"), "钱包"))
        assert "余额 ¥200.00" in again


async def test_a_notice_for_another_amount_is_refused_and_a_refunded_top_up_goes_back_through_wechat(
        api, pay, tmp_path):
    async with wallet_shop(api, pay, tmp_path) as shop:
        desk = shop.app.shop.resellers
        r = await desk.create("Acme")
        t = await desk.start_topup(r, Buyer("wechat", RES), 20_000, "wechat_pay")
        await shop.app.shop.gateways["wechat_pay"].create_native_topup(t, "top-up")
        txn = pay.mark_paid(t.id, RES)

        async def notify(body: bytes) -> int:
            async with shop.wx._session.post(shop.url + "/wechat/pay/notify", data=body) as resp:
                return resp.status

        # a (signed) payment of another amount is taken in by the one payment entry and given back: no credit
        assert await notify(pay.notify_xml(t.id, total_fee=1, transaction_id="4200000000000000000000000777")) == 200
        assert (await desk.get(r.id)).balance == 0 and await desk.statement(r.id) == []
        # so is a payment for a top-up the store never made
        assert await notify(pay.notify_xml("W261125ZZZZZZZZ", transaction_id="4200000000000000000000000778")) == 200
        async with shop.app.db.uow() as uow:
            stray = await uow.payments.existing([("wechat_pay", "4200000000000000000000000777"),
                                                 ("wechat_pay", "4200000000000000000000000778")])
        assert sorted(p.status for p in stray.values()) == ["refund_pending", "refund_pending"]
        # the true notice credits the open top-up
        assert await notify(pay.notify_xml(t.id)) == 200
        assert (await desk.get(r.id)).balance == 20_000
        # the merchant gives it back: the wallet is debited and WeChat refunds the whole payment, once
        await desk.refund_topup(t.id, actor="cli")
        await shop.idle()
        (refund,) = pay.refunds()
        assert refund["transaction_id"] == txn and refund["refund_fee"] == refund["total_fee"] == "20000"
        assert refund["out_refund_no"] == f"R{txn}"
        assert (await desk.get(r.id)).balance == 0 == await desk.ledger_sum(r.id)
        assert [(e.kind, e.amount) for e in await desk.statement(r.id)] == [("topup_back", -20_000),
                                                                             ("topup", 20_000)]
