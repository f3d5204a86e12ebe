"""My account (我的) in the chat, end to end: Telegram (aiogram and python-telegram-bot against the local fake Bot
API) and WeChat (tests/fake_wechat_api.py). The buyer sees level, spend to the next level, points, the soonest expiry
and the last movements; buys a points-mall product with points and gets its code; and gets their referral link."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from core.members import points as ledger
from core.models import Buyer
from core.supply import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.wechat_harness import APPID, SECRET, WeChatShop, option

MALL = {"sku": "MALLCARD", "title": {"en": "Mall card", "zh_CN": "积分卡"}, "price": 300}
MARKETING: dict[str, Any] = {"members": {
    "levels": [{"level": 1, "name": {"en": "Silver", "zh_CN": "白银会员"}, "min_spend": 1000, "discount_percent": 5},
               {"level": 2, "name": {"en": "Gold", "zh_CN": "黄金会员"}, "min_spend": 5000, "discount_percent": 10}],
    "points_per_unit": 1, "points_days": 90, "mall": [{"sku": "MALLCARD", "points": 40}], "referral_points": 25}}
EXTRA: dict[str, Any] = {"catalog": [MALL], "marketing": MARKETING}


async def give_points(app: Any, who: Buyer, points: int) -> None:
    now = app.clock.now()
    async with app.db.uow(write=True) as uow:
        await ledger.credit(uow, who, points, ledger.GIFT, f"gift:{who.key}", now, now + timedelta(days=90))
        await uow.commit()


async def stock_mall(app: Any, prefix: str) -> None:
    await import_codes(app.db.uow, app.vault, app.clock, "MALLCARD", [f"{prefix}-MALL-0001\n".encode()])


async def test_a_telegram_buyer_sees_their_account_buys_with_points_and_shares_their_link(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=EXTRA) as shop:
        ann = api.user(801, "Ann")

        async def tap(data: str) -> Any:
            mark = api.mark()
            await shop.send(api.callback_update(ann, data, api.last_message(801)))
            return await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801, since=mark)

        mark = api.mark()
        await shop.send(api.message_update(ann, "/start"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801, since=mark)
        account = await tap(data_of(menu, "👤 My account"))
        text = account.params["text"]
        assert "Member level: none yet" in text and "Points: 0" in text
        assert "more to reach Silver" in text

        await give_points(shop.app, Buyer("telegram", "801"), 100)
        await stock_mall(shop.app, "TG")
        mark = api.mark()
        await shop.send(api.message_update(ann, "/me"))
        me = (await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801, since=mark)).params["text"]
        assert "Points: 100" in me and "100 points expire on" in me and "+100  new-buyer gift" in me

        mall = await tap(data_of(account, "🎁 Points mall"))
        assert "You have 100 points" in mall.params["text"]
        item = await tap(data_of(mall, "Mall card — 40 points"))
        assert "Price: 40 points" in item.params["text"]
        mark = api.mark()
        await shop.send(api.callback_update(ann, data_of(item, "Buy with 40 points"), api.last_message(801)))
        paid = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801
                                  and "Paid with points" in c.params["text"], since=mark)
        assert "order" in paid.params["text"]
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801
                           and "TG-MALL-0001" in c.params["text"], since=mark, timeout=10)

        menu = await tap(buttons(paid)[0]["callback_data"])  # back to the menu
        account = await tap(data_of(menu, "👤 My account"))
        assert "Points: 60" in account.params["text"] and "-40  spent in the points mall" in account.params["text"]
        invite = await tap(data_of(account, "📣 Invite friends"))
        code = shop.app.shop.members.referral_code(Buyer("telegram", "801"))
        assert f"https://t.me/test_shop_bot?start=r_{code}" in invite.params["text"]
        assert "25 points" in invite.params["text"]


async def test_points_short_in_the_telegram_mall_is_a_clear_refusal(api: FakeBotAPI, tmp_path: Path,
                                                                    library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=EXTRA) as shop:
        bob = api.user(802, "Bob")
        await stock_mall(shop.app, "TG")
        await give_points(shop.app, Buyer("telegram", "802"), 50)
        mark = api.mark()
        await shop.send(api.message_update(bob, "/points"))
        me = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 802, since=mark)
        mall = data_of(me, "🎁 Points mall")
        mark = api.mark()
        await shop.send(api.callback_update(bob, mall, api.last_message(802)))
        listing = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 802, since=mark)
        item = data_of(listing, "Mall card — 40 points")
        async with shop.app.db.uow(write=True) as uow:  # 30 of the 50 are spent elsewhere meanwhile
            await ledger.debit(uow, Buyer("telegram", "802"), 30, ledger.SPEND, "spend:elsewhere", shop.app.clock.now())
            await uow.commit()
        mark = api.mark()
        await shop.send(api.callback_update(bob, item.replace("mall_item", "mall_buy"), api.last_message(802)))
        refusal = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 802, since=mark)
        assert "Not enough points: this costs 40, you have 20." in refusal.params["text"]
        assert await shop.app.shop.members.points(Buyer("telegram", "802")) == 20


async def test_a_wechat_buyer_sees_their_account_in_chinese_and_buys_with_points(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, extra=EXTRA) as shop:
        ann = Buyer("wechat", "o-ann")
        menu = await shop.wx.text("o-ann", "菜单")
        assert "👤 我的" in menu
        account = await shop.wx.text("o-ann", option(menu, "👤 我的"))
        assert "会员等级：暂无" in account and "积分：0" in account and "即可升级为 白银会员" in account
        await give_points(shop.app, ann, 100)
        await stock_mall(shop.app, "WX")
        account = await shop.wx.text("o-ann", "积分")
        assert "积分：100" in account and "+100  新人礼包" in account
        mall = await shop.wx.text("o-ann", option(account, "积分商城"))
        assert "您有 100 积分" in mall
        item = await shop.wx.text("o-ann", option(mall, "积分卡 — 40 积分"))
        paid = await shop.wx.text("o-ann", option(item, "用 40 积分兑换"))
        assert "积分兑换成功" in paid
        await api.wait_for(lambda: any("WX-MALL-0001" in t for t in api.texts("o-ann")))
        assert await shop.app.shop.members.points(ann) == 60

        await shop.app.shop.risk.set_level(ann, 2)  # Gold: the product page shows the member price
        await import_codes(shop.app.db.uow, shop.app.vault, shop.app.clock, "MALLCARD", [b"WX-MALL-0002\n"])
        catalog = await shop.wx.text("o-ann", "商品")
        page = await shop.wx.text("o-ann", option(catalog, "积分卡"))  # in this shop's catalogue, sold for money too
        assert "会员价：立减 10%（黄金会员）" in page and "¥2.70" in page
        account = await shop.wx.text("o-ann", "我的")
        assert "会员等级：黄金会员（每单享 10% 优惠）" in account
