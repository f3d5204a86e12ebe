"""`/console` in the chat: Telegram (both libraries, against the local Bot API) and WeChat (real signed callbacks)
answer a merchant or staff member with a one-time sign-in link built from `server.public_url`, which opens one
session; anyone else is refused (audited); with the console off the answer says how to turn it on; WeChat's plain
mode refuses it (an openid there proves nothing)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.console import ConsoleCode, ConsoleError
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront
from tests.test_telegram_admin import BOSS, command
from tests.wechat_harness import ADMIN, APPID, SECRET, WeChatShop

PUBLIC = "https://shop.example.com"
CONSOLE = {"server": {"public_url": PUBLIC + "/"}, "console": {"enabled": True, "staff": ["telegram:77"]}}
LINK = re.compile(re.escape(PUBLIC) + r"/console/login\?t=([A-Za-z0-9_-]{20,})")


async def test_telegram_merchants_and_staff_get_a_link_that_opens_one_session(api: FakeBotAPI, tmp_path: Path,
                                                                              library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=CONSOLE) as shop:
        desk = shop.app.shop.console
        assert desk is not None
        for user_id in (BOSS, 77):
            text = await command(shop, api.user(user_id), "/console")
            found = LINK.search(text)
            assert found, text
            assert "10" in text  # how long it is good for
            _, session = await desk.redeem(found.group(1))
            assert session.merchant.external_id == str(user_id)
            assert session.role.value == ("owner" if user_id == BOSS else "staff")
            with pytest.raises(ConsoleError) as used:
                await desk.redeem(found.group(1))
            assert used.value.code is ConsoleCode.LINK_USED
        text = await command(shop, api.user(501), "/console")
        assert not LINK.search(text) and "merchants and staff" in text
        async with shop.app.db.uow() as uow:
            assert len(await uow.audit.latest("admin_denied", "telegram:501")) == 1
            assert len(await uow.audit.latest("console_link")) == 2


async def test_with_the_console_off_the_answer_says_how_to_turn_it_on(api: FakeBotAPI, tmp_path: Path) -> None:
    async with Shopfront(api, tmp_path) as shop:
        text = await command(shop, api.user(BOSS), "/console")
        assert "console.enabled: true" in text and "/console/login" not in text


@pytest.fixture
async def wx_api():
    async with FakeWeChatAPI(APPID, SECRET) as fake:
        yield fake


async def test_wechat_merchants_get_a_link_in_safe_mode_only(wx_api: FakeWeChatAPI, tmp_path: Path) -> None:
    async with WeChatShop(wx_api, tmp_path, extra=CONSOLE) as shop:
        reply = await shop.wx.text(ADMIN, "/console")
        found = LINK.search(reply)
        assert found, reply
        _, session = await shop.app.shop.console.redeem(found.group(1))
        assert session.merchant.key == f"wechat:{ADMIN}" and session.owner
        assert not LINK.search(await shop.wx.text("o-ann", "/console"))  # a buyer: refused
    async with WeChatShop(wx_api, tmp_path / "plain", wechat={"aes_key": ""}, extra=CONSOLE) as shop:
        reply = await shop.wx.text(ADMIN, "/console")
        assert "安全模式" in reply and not LINK.search(reply)
