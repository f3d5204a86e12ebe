"""Group-buy (拼团) in the chat: Telegram end to end on both libraries through the fake Bot API (start a group
from the product page, the share link, a friend joins by it, both pay in Stars, both get the completion message and
their codes), WeChat by text (`拼团 <id>`), and a join after the group closed refused in words."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from core.group_buy import GROUP, NEW
from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.fake_wechat_pay import FakeWeChatPay
from tests.telegram_harness import Shopfront, buttons, data_of
from tests.test_telegram_storefront import browse_to_product
from tests.wechat_harness import APPID, MCH_ID, PAY_KEY, WeChatShop, option

OFFER = {"sku": "GAME", "price": 800, "stars": 50, "size": 2, "hours": 24}
GROUP_BUY = {"marketing": {"group_buy": {"offers": [OFFER]}}}
LINK = re.compile(r"https://t\.me/test_shop_bot\?start=(g_[A-Z0-9]+)")


async def _after(shop: Shopfront, user: dict, update: dict, method: str = "sendMessage"):  # noqa: ANN202
    api = shop.api
    mark = api.mark()
    await shop.send(update)
    return await api.wait_for(method, lambda c: c.params.get("chat_id") == user["id"], since=mark)


async def _pay(shop: Shopfront, user: dict, order_id: str, charge: str) -> None:
    api = shop.api
    await shop.send(api.pre_checkout_update(user, order_id, OFFER["stars"]))
    await shop.send(api.successful_payment_update(user, order_id, OFFER["stars"], charge))


def _texts_to(api: FakeBotAPI, chat: int, mark: int) -> list[str]:
    return [c.params["text"] for c in api.calls_since(mark, "sendMessage") if c.params["chat_id"] == chat]


async def test_given_a_group_price_on_telegram_when_a_friend_joins_by_the_link_and_both_pay_then_both_get_codes(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=GROUP_BUY) as shop:
        codes = await shop.stock(3)
        ann, bob = api.user(801, "Ann"), api.user(802, "Bob")
        page = await browse_to_product(shop, ann)
        start = "👥 Start a group at CN¥8.00 (2 people, 24 h)"
        assert start in [b["text"] for b in buttons(page)]
        assert "Group price: CN¥8.00 each when 2 people buy within 24 h" in page.params["text"]

        mark = api.mark()
        await shop.send(api.callback_update(ann, data_of(page, start), api.last_message(801)))
        invoice = await api.wait_for("sendInvoice", lambda c: c.params["chat_id"] == 801, since=mark)
        assert [p["amount"] for p in invoice.params["prices"]] == [50]  # the group price in Stars, not 70
        group_page = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 801
                                        and "Paid: 0 of 2" in c.params["text"], since=mark)
        link = LINK.search(group_page.params["text"])
        assert link is not None, group_page.params["text"]

        mark = api.mark()
        await _pay(shop, ann, invoice.params["payload"], "charge-ann")
        await shop.app.shop.dispatcher.drain()
        told = _texts_to(api, 801, mark)
        assert any("1 of 2 paid" in t for t in told) and not any("tg-spoiler" in t for t in told)

        # Bob follows the shared link: the group's page, Join, the invoice at the group price.
        bob_page = await _after(shop, bob, api.message_update(bob, f"/start {link.group(1)}"))
        assert "Paid: 1 of 2" in bob_page.params["text"] and "Time left: 23 h" in bob_page.params["text"]
        joined = await _after(shop, bob, api.callback_update(bob, data_of(bob_page, "Join at CN¥8.00"),
                                                             api.last_message(802)), "sendInvoice")
        assert [p["amount"] for p in joined.params["prices"]] == [50]

        mark = api.mark()
        await _pay(shop, bob, joined.params["payload"], "charge-bob")
        await shop.app.shop.dispatcher.drain()
        for chat in (801, 802):
            texts = await _wait_texts(api, chat, mark, 2)
            assert any("is full" in t for t in texts), texts
            assert sum(1 for t in texts if "tg-spoiler" in t) == 1
        delivered = [c for c in api.calls_since(mark, "sendMessage") if "tg-spoiler" in c.params["text"]]
        assert sorted(c for c in codes if any(c in d.params["text"] for d in delivered)) == codes[:2]
        assert api.calls("refundStarPayment") == []


async def _wait_texts(api: FakeBotAPI, chat: int, mark: int, n: int) -> list[str]:
    for _ in range(100):
        texts = _texts_to(api, chat, mark)
        if len(texts) >= n:
            return texts
        await asyncio.sleep(0.05)
    return _texts_to(api, chat, mark)


async def test_given_a_full_group_on_telegram_when_someone_follows_its_link_then_the_join_is_refused_in_words(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=GROUP_BUY) as shop:
        await shop.stock(3)
        app = shop.app
        pid = (await app.shop.product_by_sku("GAME")).id
        opened = await app.shop.reserve(Buyer("telegram", "811"), pid, 1, "en", "811", promo={GROUP: NEW})
        gid = opened.promo[GROUP]["id"]
        await app.shop.reserve(Buyer("telegram", "812"), pid, 1, "en", "812", promo={GROUP: gid})  # both seats held
        carl = api.user(813, "Carl")
        page = await _after(shop, carl, api.message_update(carl, f"/start g_{gid}"))
        refused = await _after(shop, carl, api.callback_update(carl, data_of(page, "Join at CN¥8.00"),
                                                               api.last_message(813)))
        assert f"Group {gid} is full (2 people). Nothing was held or charged." in refused.params["text"]
        assert api.calls("sendInvoice") == []


async def test_given_a_group_on_wechat_when_a_friend_sends_pin_tuan_and_the_id_then_they_join_and_both_get_codes(
        tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, "test_secret") as api:
        pay = await FakeWeChatPay(APPID, MCH_ID, PAY_KEY).start()
        try:
            async with WeChatShop(api, tmp_path, pay=pay, extra=GROUP_BUY) as shop:
                codes = await shop.stock(3)
                menu = await shop.wx.subscribe("o-ann")
                catalog = await shop.wx.text("o-ann", option(menu, "商品列表"))
                page = await shop.wx.text("o-ann", option(catalog, "游戏点卡"))
                assert "发起拼团 ¥8.00（2 人，24 小时）" in page
                opened = await shop.wx.text("o-ann", option(page, "发起拼团"))
                [ann_order] = await shop.order_ids("o-ann")
                await shop.idle()
                gid = next(m.group(1) for t in [opened, *api.texts("o-ann")]
                           if (m := re.search(r"拼团 ([A-Z0-9]{8})", t)))
                assert (await shop.pay_notice(ann_order, "o-ann"))[0] == 200
                await shop.idle()
                assert any("已付款 1/2 人" in t for t in api.texts("o-ann"))

                group_page = await shop.wx.text("o-bob", f"拼团 {gid}")
                assert "已付款：1/2 人" in group_page
                await shop.wx.text("o-bob", option(group_page, "参团"))
                [bob_order] = await shop.order_ids("o-bob")
                await shop.idle()
                assert (await shop.pay_notice(bob_order, "o-bob"))[0] == 200
                await shop.idle()
                for openid in ("o-ann", "o-bob"):
                    texts = api.texts(openid)
                    assert any("已成团" in t for t in texts), texts
                    assert sum(1 for t in texts for c in codes[:2] if c in t) == 1

                late = await shop.wx.text("o-carl", f"join {gid}")
                refused = await shop.wx.text("o-carl", option(late, "刷新"))
                assert "本团已成团" in refused and "参团" not in refused
        finally:
            await pay.stop()
