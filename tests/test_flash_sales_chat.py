"""A flash sale in the chats: the product page shows the start and a countdown before, "N left" and the time left
during; the flash button buys at the flash price in Stars, and a buyer too late gets a clear refusal with nothing
held. Telegram through both libraries against the fake Bot API; WeChat's text through its fake. The sale comes
from config.yaml (marketing.flash_sales.sales)."""
from __future__ import annotations

from pathlib import Path

from core.clock import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.test_telegram_storefront import browse_to_product
from tests.wechat_harness import APPID, SECRET, WeChatShop, option

SALE = {"marketing": {"flash_sales": {"sales": [
    {"sku": "GAME", "price": 500, "units": 2, "per_buyer": 1, "starts": "2026-01-01T01:00:00+00:00",
     "ends": "2026-01-01T03:00:00+00:00"}]}}}
FLASH_BUY = "⚡ Buy at the flash price"


async def _tap(shop: Shopfront, user: dict, data: str, method: str = "sendMessage"):  # noqa: ANN202
    api = shop.api
    mark = api.mark()
    await shop.send(api.callback_update(user, data, api.last_message(user["id"])))
    return await api.wait_for(method, lambda c: c.params.get("chat_id") == user["id"], since=mark)


async def test_telegram_shows_the_countdown_then_units_left_and_sells_at_the_flash_price_in_stars(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    clock = FakeClock()  # 2026-01-01 00:00 UTC: an hour before the sale
    async with Shopfront(api, tmp_path, clock, library=library, extra=SALE) as shop:
        await shop.stock(5)
        ann, bob, cat = api.user(801, "Ann"), api.user(802, "Bob"), api.user(803, "Cat")
        before = await browse_to_product(shop, ann)
        text = before.params["text"]
        assert "starts 2026-01-01 01:00 UTC, in 01:00:00" in text and "70 Stars" in text
        assert buttons(before)[0]["text"] == "Buy"  # not started: the ordinary price

        clock.advance(hours=1, minutes=30)
        page = await browse_to_product(shop, ann)
        text = page.params["text"]
        assert "2 left, at most 1 per buyer. Ends in 01:30:00" in text and "35 Stars" in text
        invoice = await _tap(shop, ann, data_of(page, FLASH_BUY), "sendInvoice")
        assert [p["amount"] for p in invoice.params["prices"]] == [35]
        order_id = invoice.params["payload"]
        await shop.send(api.pre_checkout_update(ann, order_id, 35))
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, order_id, 35, "charge-flash"))
        await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)

        # Ann has had hers: the ordinary price for her now, and the page says why.
        again = await browse_to_product(shop, ann)
        assert "You have had your 1 at the flash price" in again.params["text"]
        assert buttons(again)[0]["text"] == "Buy"

        cat_page = await browse_to_product(shop, cat)  # Cat sees the last unit ...
        assert "1 left" in cat_page.params["text"]
        bob_page = await browse_to_product(shop, bob)
        await _tap(shop, bob, data_of(bob_page, FLASH_BUY), "sendInvoice")  # ... but Bob takes it first
        refused = await _tap(shop, cat, data_of(cat_page, FLASH_BUY))
        assert "flash sale is sold out" in refused.params["text"] and "Nothing was held" in refused.params["text"]
        sold_out = await browse_to_product(shop, cat)
        assert "sold out: ordinary price now" in sold_out.params["text"]
        assert api.calls("sendInvoice")[-1].params["chat_id"] == 802  # no invoice for Cat


async def test_wechat_shows_the_flash_sale_in_text(tmp_path: Path) -> None:
    clock = FakeClock()
    ann = "o-ann"
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, clock=clock, extra=SALE) as shop:
        await shop.stock(3)
        menu = await shop.wx.subscribe(ann)
        catalog = await shop.wx.text(ann, option(menu, "商品列表"))
        page = await shop.wx.text(ann, option(catalog, "游戏点卡"))
        assert "开抢，倒计时 01:00:00" in page and "限量 2 件" in page
        clock.advance(hours=2)
        catalog = await shop.wx.text(ann, option(page, "返回"))
        page = await shop.wx.text(ann, option(catalog, "游戏点卡"))
        assert "仅剩 2 件，每人限购 1 件。距结束 01:00:00" in page and "立即秒杀" in page
        invoice = await shop.wx.text(ann, option(page, "立即秒杀"))
        assert "合计:¥5.00" in invoice
