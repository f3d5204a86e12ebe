"""A coupon in the chat (handlers/catalog.py): "🎟 Have a coupon?" on the product screen asks for the code, a wrong
one is refused in words and asked again, a right one shows the product at the coupon's price, and Buy holds the
order at that price. Telegram end to end with both libraries (the fake Bot API), WeChat by its numbered replies
(the fake WeChat API). The code is never kept in plain text in the conversation state."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from core.coupons import PERCENT, Terms
from core.models import Buyer
from storage import tables as t
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.test_telegram_storefront import browse_to_product
from tests.wechat_harness import ADMIN, APPID, SECRET, WeChatShop, option

HAVE = "🎟 Have a coupon?"


async def _states(app) -> str:  # noqa: ANN001
    async with app.db.read_engine.connect() as conn:
        return json.dumps([r.state for r in await conn.execute(select(t.customers.c.state))])


class Chat:
    """One Telegram buyer's side: taps a button, types a message, and gets the store's next message (or invoice)."""

    def __init__(self, shop: Shopfront, user: dict) -> None:
        self.shop, self.api, self.user, self.chat = shop, shop.api, user, user["id"]

    async def _next(self, update: dict, method: str = "sendMessage"):  # noqa: ANN202
        mark = self.api.mark()
        await self.shop.send(update)
        return await self.api.wait_for(method, lambda c: c.params["chat_id"] == self.chat, since=mark)

    async def tap(self, data: str, method: str = "sendMessage"):  # noqa: ANN202
        return await self._next(self.api.callback_update(self.user, data, self.api.last_message(self.chat)), method)

    async def say(self, text: str):  # noqa: ANN202
        return await self._next(self.api.message_update(self.user, text))


async def test_a_telegram_buyer_types_a_coupon_sees_the_lower_price_and_pays_it_in_stars(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(3)
        await shop.app.shop.coupons.create("TG10", "TGCODE10", Terms(PERCENT, 10, "CNY"))
        ann = Chat(shop, api.user(801, "Ann", "en"))
        page = await browse_to_product(shop, ann.user)
        assert HAVE in [b["text"] for b in buttons(page)]

        ask = await ann.tap(data_of(page, HAVE))
        assert "Type your coupon code for Game card" in ask.params["text"]
        wrong = await ann.say("NOTACODE")
        assert "That coupon code is not valid" in wrong.params["text"] and "Tries left this hour: 9" in \
            wrong.params["text"]
        priced = await ann.say("tg-code-10")  # asked again after the wrong one: this is taken as the code
        text = priced.params["text"]
        assert "Price: CN¥9.00 (was CN¥10.00)" in text and "Coupon TG10: CN¥1.00 off" in text, text
        assert "63 Stars" in text
        assert "✖ Remove coupon" in [b["text"] for b in buttons(priced)]
        assert "TGCODE10" not in (await _states(shop.app)).upper()  # kept sealed, never in plain text

        buy = next(b["callback_data"] for b in buttons(priced) if b["callback_data"].startswith("buy:"))
        invoice = await ann.tap(buy, "sendInvoice")
        assert [p["amount"] for p in invoice.params["prices"]] == [63]
        [order] = await shop.app.shop.my_orders(Buyer("telegram", "801"))
        assert (order.amount, order.discount) == (900, 100) and order.promo["coupon"]["name"] == "TG10"
        assert [c.used for c in await shop.app.shop.coupons.all()] == [1]

        # the coupon went with that order: the product is at its listed price again
        game = await shop.app.shop.product_by_sku("GAME")
        assert game is not None
        again = await ann.tap(f"product:{game.id}")
        assert "Price: CN¥10.00" in again.params["text"] and "was" not in again.params["text"]


async def test_a_telegram_buyer_who_removes_the_coupon_pays_the_listed_price(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(2)
        await shop.app.shop.coupons.create("GONE", "GONE1234", Terms(PERCENT, 50, "CNY"))
        bob = Chat(shop, api.user(802, "Bob", "en"))
        page = await browse_to_product(shop, bob.user)
        await bob.tap(data_of(page, HAVE))
        priced = await bob.say("GONE1234")
        assert "Coupon GONE" in priced.params["text"]
        plain = await bob.tap(data_of(priced, "✖ Remove coupon"))
        assert "Coupon GONE" not in plain.params["text"] and HAVE in [b["text"] for b in buttons(plain)]
        invoice = await bob.tap(data_of(plain, "Buy"), "sendInvoice")
        assert [p["amount"] for p in invoice.params["prices"]] == [70]
        assert [c.used for c in await shop.app.shop.coupons.all()] == [0]


async def test_a_wechat_buyer_enters_a_coupon_by_the_numbered_menu_and_orders_at_its_price(tmp_path: Path) -> None:
    ann = "o-coupon"
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path) as shop:
        await shop.stock(2)
        await shop.app.shop.coupons.create("WX5", "WXCODE55", Terms("amount", 500, "CNY", min_spend=800))
        menu = await shop.wx.subscribe(ann)
        catalog = await shop.wx.text(ann, option(menu, "商品列表"))
        page = await shop.wx.text(ann, option(catalog, "游戏点卡"))
        assert "使用优惠券" in page
        ask = await shop.wx.text(ann, option(page, "使用优惠券"))
        assert "请输入用于「游戏点卡」的优惠券码" in ask
        wrong = await shop.wx.text(ann, "ZZZZZZZZ")
        assert "优惠券码无效" in wrong
        priced = await shop.wx.text(ann, "wxcode55")
        assert "优惠券 WX5：立减 ¥5.00" in priced and "¥5.00" in priced, priced
        held = await shop.wx.text(ann, option(priced, "购买"))
        assert "¥5.00" in held
        [order] = await shop.app.shop.my_orders(Buyer("wechat", ann))
        assert (order.amount, order.discount) == (500, 500)


# -- merchants --------------------------------------------------------------------------------------------------

async def test_a_merchant_lists_coupons_without_codes_and_turns_one_off_on_telegram(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        desk = shop.app.shop.coupons
        codes = await desk.generate("BATCH", 3, Terms(PERCENT, 20, "CNY"))
        await desk.create("VIP", "VIPCODE77", Terms("amount", 500, "CNY", total_limit=100))
        boss, ann = Chat(shop, api.user(1)), Chat(shop, api.user(805))

        async def say(user: Chat, text: str) -> str:
            return (await user.say(text)).params["text"]

        assert "merchants only" in await say(ann, "/coupons")
        listed = await say(boss, "/coupons")
        assert "#1 BATCH: 20%, 3 single-use codes, used 0, on" in listed
        assert "#2 VIP: CN¥5.00, one shared code, used 0 of 100, on" in listed
        assert not any(c in listed for c in [*codes, "VIPCODE77"])
        assert "/coupon_off NAME" in await say(boss, "/coupon_off")
        assert "There is no coupon named NOPE" in await say(boss, "/coupon_off NOPE")
        assert "Coupon VIP is off" in await say(boss, "/coupon_off vip")
        assert "#2 VIP: CN¥5.00, one shared code, used 0 of 100, off" in await say(boss, "/coupons")
        async with shop.app.db.uow() as uow:
            audited = [(e.detail.get("command"), e.detail.get("name")) for e in await uow.audit.latest("admin")]
        assert ("coupon_off", "VIP") in audited and ("coupons", None) in audited


async def test_a_wechat_merchant_lists_coupons(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path) as shop:
        await shop.app.shop.coupons.create("WXVIP", "WXVIP123", Terms(PERCENT, 15, "CNY"))
        listed = await shop.wx.text(ADMIN, "/coupons")
        assert "#1 WXVIP：15%，共享码，已用 0，启用" in listed and "WXVIP123" not in listed
        assert "已停用" in await shop.wx.text(ADMIN, "/coupon_off WXVIP")
