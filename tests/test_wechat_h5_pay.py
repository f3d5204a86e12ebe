"""Paying in the WeChat H5 shop over real HTTP, on WeChat Pay v2 and v3: the buyer signed in by OAuth2 orders
through the Mini App API, gets the signed getBrandWCPayRequest parameters of a JSAPI order made for their openid,
pays them at the fake pay server (as WeChat's pay sheet would), whose notice delivers the order: the code is in
the chat (customer-service message) and on the page (a reveal). Without WeChat Pay an order is refused with
nothing held."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.models import Buyer
from tests.fake_wechat_api import FakeWeChatAPI
from tests.test_wechat_h5 import OPENID, H5Kit, fake_pay, token_of, v2_pay, v3_pay
from tests.wechat_harness import APPID, SECRET


@pytest.mark.parametrize("version", [2, 3])
async def test_jsapi_order_paid_in_wechat_is_delivered_to_the_chat_and_the_page(version: int, tmp_path: Path,
                                                                              db_url: str) -> None:
    pay = await fake_pay(version)
    try:
        async with FakeWeChatAPI(APPID, SECRET) as api, H5Kit(
                api, tmp_path, pay=(v3_pay if version == 3 else v2_pay)(tmp_path, pay), database=db_url) as kit:
            pay.notify_target = kit.url + "/wechat/pay/notify"
            api.oauth_openid = OPENID
            codes = await kit.stock(2)
            token = token_of((await kit.open_shop())[1])
            status, catalog = await kit.api_get("/catalog", token)
            game = next(p for p in catalog["products"] if p["sku"] == "GAME")
            assert game["price"]["currency"] == "CNY" and game["price"]["amount"] == 1000

            status, placed = await kit.api_post("/orders", token, {"product_id": game["id"], "qty": 1})
            assert status == 201, placed
            order_id = placed["order"]["id"]
            assert placed["pay"]["kind"] == "wechat_jsapi"
            params = placed["pay"]["params"]
            assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
            assert params["appId"] == APPID and params["signType"] == ("RSA" if version == 3 else "MD5")
            # The JSAPI order was made for this buyer's openid, titled in their language (Chinese: new to the store).
            if version == 3:
                (made,) = pay.requests_to("/v3/pay/transactions/jsapi")
                assert (made["payer"]["openid"], made["out_trade_no"], made["description"]) == (
                    OPENID, order_id, "游戏点卡")
            else:
                (made,) = pay.requests_to("/pay/unifiedorder")
                assert (made["trade_type"], made["openid"], made["out_trade_no"], made["body"]) == (
                    "JSAPI", OPENID, order_id, "游戏点卡")

            # Not paid yet: the page waits, nothing to reveal.
            assert (await kit.api_get(f"/orders/{order_id}", token))[1]["order"]["status"] == "held"
            # The buyer confirms WeChat's pay sheet: WeChat checks the paySign and posts its notice to the store.
            await pay.pay_prepay(params["package"].removeprefix("prepay_id="), OPENID, params=params)
            assert pay.notified[-1][0] in (200, 204), pay.notified
            await kit.idle()
            status, body = await kit.api_get(f"/orders/{order_id}", token)
            assert body["order"]["status"] == "delivered"
            status, shown = await kit.api_post(f"/orders/{order_id}/reveal", token)
            assert status == 200 and shown["codes"] == [codes[0]]
            await api.wait_for(lambda: any(codes[0] in t for t in api.texts(OPENID)))
            assert [o.id for o in await kit.app.shop.my_orders(Buyer("wechat", OPENID))] == [order_id]
    finally:
        await pay.stop()


async def test_without_wechat_pay_the_h5_shop_browses_but_holds_nothing(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, H5Kit(api, tmp_path) as kit:
        api.oauth_openid = OPENID
        await kit.stock(1)
        token = token_of((await kit.open_shop())[1])
        status, catalog = await kit.api_get("/catalog", token)
        game = next(p for p in catalog["products"] if p["sku"] == "GAME")
        status, body = await kit.api_post("/orders", token, {"product_id": game["id"], "qty": 1})
        assert (status, body["error"]["code"]) == (503, "unavailable")
        assert body["error"]["message"]
        assert await kit.app.shop.my_orders(Buyer("wechat", OPENID)) == []
