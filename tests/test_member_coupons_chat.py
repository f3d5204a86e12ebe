"""My coupons (我的优惠券) in the chat, end to end: a Telegram buyer (both libraries, the fake Bot API) gets the
new-buyer gift coupon on /start, buys a coupon in the points mall, sees both codes in My coupons (hidden, protected)
and types one on a product's "Have a coupon?" to see the lower price; a WeChat buyer does the same in Chinese by the
numbered menu."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.coupons import PERCENT, Terms
from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.test_coupons_chat import HAVE, Chat
from tests.test_member_coupons import give_points
from tests.wechat_harness import APPID, SECRET, WeChatShop, option

MARKETING: dict[str, Any] = {"members": {"gift_coupon": "WELCOME",
                                         "mall": [{"reward": "coupon", "coupon": "MALLTEN", "points": 40}]}}
EXTRA: dict[str, Any] = {"marketing": MARKETING}


async def campaigns(app: Any) -> None:
    await app.shop.coupons.generate("WELCOME", 1, Terms(PERCENT, 5, "CNY"))
    await app.shop.coupons.generate("MALLTEN", 1, Terms(PERCENT, 10, "CNY"))


async def test_a_telegram_buyer_gets_a_gift_coupon_buys_one_with_points_and_uses_it_from_my_coupons(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=EXTRA) as shop:
        await shop.stock(2)
        await campaigns(shop.app)
        ann = Chat(shop, api.user(811, "Ann", "en"))
        menu = await ann.say("/start")
        assert "A WELCOME coupon is yours (new-buyer gift)" in menu.params["text"]
        await give_points(shop.app, Buyer("telegram", "811"), 100)

        account = await ann.tap(data_of(menu, "👤 My account"))
        mall = await ann.tap(data_of(account, "🎁 Points mall"))
        item = await ann.tap(data_of(mall, "🎟 MALLTEN (10% off) — 40 points"))
        assert "Price: 40 points. You have 100 points." in item.params["text"]
        bought = await ann.tap(data_of(item, "Buy with 40 points"))
        assert "Bought: coupon MALLTEN (10% off)" in bought.params["text"]
        assert "<tg-spoiler>" in bought.params["text"] and bought.params.get("protect_content")

        listing = await ann.tap(data_of(bought, "🎟 My coupons"))
        text = listing.params["text"]
        assert "1. MALLTEN (10% off) — points mall" in text and "2. WELCOME (5% off) — new-buyer gift" in text
        mine = await shop.app.shop.members.my_coupons(Buyer("telegram", "811"))
        assert [c.coupon.name for c in mine] == ["MALLTEN", "WELCOME"] and all(c.code in text for c in mine)
        assert await shop.app.shop.members.points(Buyer("telegram", "811")) == 60

        game = await shop.app.shop.product_by_sku("GAME")
        assert game is not None
        page = await ann.tap(f"product:{game.id}")
        await ann.tap(data_of(page, HAVE))
        priced = await ann.say(mine[0].code or "")
        assert "Price: CN¥9.00 (was CN¥10.00)" in priced.params["text"] and "Coupon MALLTEN" in priced.params["text"]
        buy = next(b["callback_data"] for b in buttons(priced) if b["callback_data"].startswith("buy:"))
        await ann.tap(buy, "sendInvoice")
        [order] = await shop.app.shop.my_orders(Buyer("telegram", "811"))
        assert (order.amount, order.promo["coupon"]["name"]) == (900, "MALLTEN")
        listing = await ann.tap(data_of(menu, "👤 My account"))
        listing = await ann.tap(data_of(listing, "🎟 My coupons"))
        assert "• MALLTEN (10% off) — used" in listing.params["text"]
        assert "1. WELCOME (5% off)" in listing.params["text"]


async def test_a_wechat_buyer_sees_my_coupons_in_chinese_and_buys_one_with_points(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, extra=EXTRA) as shop:
        await campaigns(shop.app)
        ann = Buyer("wechat", "o-mc")
        menu = await shop.wx.subscribe("o-mc")  # following the account is the first start: the gift
        assert "新人礼包：WELCOME 优惠券已发放" in menu
        await give_points(shop.app, ann, 50)
        account = await shop.wx.text("o-mc", "积分")
        mall = await shop.wx.text("o-mc", option(account, "积分商城"))
        item = await shop.wx.text("o-mc", option(mall, "MALLTEN（减 10%）— 40 积分"))
        bought = await shop.wx.text("o-mc", option(item, "用 40 积分兑换"))
        assert "已兑换：优惠券 MALLTEN（减 10%）" in bought
        account = await shop.wx.text("o-mc", "我的")
        listing = await shop.wx.text("o-mc", option(account, "我的优惠券"))
        mine = await shop.app.shop.members.my_coupons(ann)
        assert "MALLTEN（减 10%）— 积分商城" in listing and mine[0].code and mine[0].code in listing
        assert "WELCOME（减 5%）— 新人礼包" in listing and mine[1].code and mine[1].code in listing
        assert "使用方法" in listing
