"""The WeChat H5 shop in a real browser (Chromium), on WeChat Pay v2 and v3: the buyer opens /h5/, is signed in
silently through the fake WeChat OAuth2 page, browses, buys; the page calls
`WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb)` — here a stand-in (Playwright add_init_script) that
pays the prepay through the fake pay server as WeChat's pay sheet would (it checks the paySign) and calls back ok
— and the page shows the order delivered and its code; the code also arrived in the chat by customer-service
message."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.fake_wechat_api import FakeWeChatAPI
from tests.test_wechat_h5 import OPENID, H5Kit, fake_pay, v2_pay, v3_pay
from tests.wechat_harness import APPID, SECRET

BRIDGE = """
(() => {
  const calls = [];
  window.__wx = { calls };
  window.WeixinJSBridge = {
    invoke(name, params, cb) {
      calls.push([name, params]);
      if (name !== 'getBrandWCPayRequest') return cb({ err_msg: name + ':fail' });
      window.__wxpay(JSON.stringify(params)).then(
        (result) => cb({ err_msg: 'get_brand_wcpay_request:' + result }),
        () => cb({ err_msg: 'get_brand_wcpay_request:fail' }));
    },
  };
})();
"""


@pytest.mark.parametrize("version", [2, 3])
async def test_buying_in_the_h5_shop_with_the_wechat_pay_sheet(version: int, page: Page, tmp_path: Path) -> None:
    pay = await fake_pay(version)
    paid: list[dict[str, Any]] = []
    try:
        async with FakeWeChatAPI(APPID, SECRET) as api, H5Kit(
                api, tmp_path, pay=(v3_pay if version == 3 else v2_pay)(tmp_path, pay)) as kit:
            pay.notify_target = kit.url + "/wechat/pay/notify"
            api.oauth_openid = OPENID
            codes = await kit.stock(2)
            pid = next(p.id for p in await kit.app.shop.products() if p.sku == "GAME")

            async def wxpay(raw: str) -> str:
                """WeChat's pay sheet: the buyer confirms; WeChat refuses a wrong paySign or another openid."""
                params = json.loads(raw)
                await pay.pay_prepay(params["package"].removeprefix("prepay_id="), OPENID, params=params)
                paid.append(params)
                return "ok"

            await page.expose_function("__wxpay", wxpay)
            await page.add_init_script(BRIDGE)
            await page.goto(kit.url + "/h5/")
            # signed in; the code left the address bar (the browser keeps the authorize URL's #wechat_redirect)
            assert page.url.split("#")[0] == kit.url + "/h5/"
            assert len(api.authorized) == 1
            await page.locator(f'button.card[data-product="{pid}"]').click()
            await page.locator("#buy").click()
            await expect(page.locator('[data-state="delivered"]')).to_be_visible(timeout=15000)
            assert len(paid) == 1 and paid[0]["signType"] == ("RSA" if version == 3 else "MD5")
            calls = await page.evaluate("window.__wx.calls")
            assert [c[0] for c in calls] == ["getBrandWCPayRequest"] and calls[0][1] == paid[0]
            await page.locator("#reveal").click()
            await expect(page.locator("#codes code")).to_have_text([codes[0]])
            await api.wait_for(lambda: any(codes[0] in t for t in api.texts(OPENID)))  # and in the chat
    finally:
        await pay.stop()
