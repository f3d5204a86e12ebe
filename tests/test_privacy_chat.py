"""`/mydata` in the chats (handlers/privacy.py): the buyer sees what is kept about them (counts, language, phone)
and "Delete my data", after one confirmation, tells the merchants which `run.py forget` to run (once a day); on
Telegram (both libraries, buttons) and WeChat (a keyword, numbered replies), one store serving both."""
from __future__ import annotations

from pathlib import Path

from core.models import Buyer
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.test_link_chat import both_chats, tg_tap, tg_text, wx_api  # noqa: F401 - the fixture is used by name
from tests.wechat_harness import option

ANN_WX = "o-ann-data"


async def test_mydata_shows_what_is_kept_and_delete_asks_the_merchant(
        api: FakeBotAPI, wx_api: FakeWeChatAPI, tmp_path: Path, library: str) -> None:  # noqa: F811
    async with both_chats(api, wx_api, tmp_path, library) as (shop, wx):
        ann = api.user(702, "Ann")
        await tg_text(shop, ann, "/start")
        await shop.send(api.message_update(ann, contact=api.contact("+8613800138001", user_id=702)))
        page = await tg_text(shop, ann, "/mydata")
        assert "linked accounts: 1" in page and "orders: 0" in page and "phone bound: yes" in page
        assert "language: en" in page

        mark = api.mark()
        asked = await tg_tap(shop, ann, "mydata_delete")
        assert any("Ask the shop to delete your data?" in c.params.get("text", "") for c in asked)
        done = "\n".join(c.params.get("text", "") for c in await tg_tap(shop, ann, "mydata_delete_ok"))
        assert "passed to the shop" in done
        await shop.app.shop.dispatcher.drain()
        to_admin = [c.params.get("text", "") for c in api.calls_since(mark, "sendMessage")
                    if c.params.get("chat_id") == 1]
        assert any("run.py forget telegram:702" in t for t in to_admin), to_admin
        again = "\n".join(c.params.get("text", "") for c in await tg_tap(shop, ann, "mydata_delete_ok"))
        assert "already asked today" in again
        async with shop.app.db.uow() as uow:  # nothing erased: the merchant decides
            assert await uow.customers.get(Buyer("telegram", "702")) is not None

        await wx.subscribe(ANN_WX)
        page = await wx.text(ANN_WX, "我的数据")
        assert "关联账号：1" in page and "订单：0" in page and "已绑定手机：否" in page
        ask = await wx.text(ANN_WX, option(page, "删除我的数据"))
        assert "确定请求本店删除您的数据吗" in ask
        sent = await wx.text(ANN_WX, option(ask, "确定删除"))
        assert "已转交店铺" in sent
