"""Merchant alerts from the scheduler, per channel: Telegram admins by message, WeChat admins and the WeCom
robot (through the existing MerchantAlerts), each in the merchant's language; one failing channel does not
stop the others."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bots.telegram.alerts import TelegramAlerts
from bots.telegram.common import OutMessage, buyer_of
from bots.wechat.admin import MerchantAlerts
from core.alerts import FanoutAlerts
from locales import Translator
from tests.helpers import open_shop

PARAMS = {"sku": "CARD-10", "title": "Game <card>", "n": 2}


class RecordingPort:
    """The Telegram Bot API as far as alerts use it; user 666 never started the bot."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def send(self, chat_id: int, message: OutMessage) -> int:
        if chat_id == 666:
            raise RuntimeError("Forbidden: bot can't initiate conversation with a user")
        self.sent.append((chat_id, message.text))
        return len(self.sent)


class RecordingWeChat:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_text(self, openid: str, text: str) -> None:
        self.sent.append((openid, text))


class RecordingRobot:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self) -> None:
        pass


class Broken:
    async def alert(self, key: str, params: dict[str, Any]) -> None:
        raise ConnectionError("down")


async def test_alerts_reach_telegram_and_wechat_merchants_in_their_language(tmp_path: Path, sqlite_url: str) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        shop = app.shop
        zh = await shop.customer(buyer_of(2), "zh-hans")
        await shop.save_customer(zh)
        i18n = Translator(("en", "zh_CN"))
        port, wx, robot = RecordingPort(), RecordingWeChat(), RecordingRobot()
        telegram = TelegramAlerts(port, i18n, shop, admins=[1, 666, 2])
        wechat = MerchantAlerts(shop, wx, i18n, admins=["o-merchant"], robot=robot)  # type: ignore[arg-type]
        alerts = FanoutAlerts([Broken(), telegram, wechat])

        await alerts.alert("alert.low_stock", PARAMS)

        assert port.sent == [(1, "🔔 Low stock: CARD-10 (Game &lt;card&gt;) has 2 codes left."),
                             (2, "🔔 库存不足：CARD-10（Game &lt;card&gt;）仅剩 2 个卡密。")]
        assert wx.sent == [("o-merchant", "库存不足：CARD-10（Game <card>）仅剩 2 个卡密。")]  # WeChat: Chinese first
        assert robot.sent == ["库存不足：CARD-10（Game <card>）仅剩 2 个卡密。"]  # the robot speaks Chinese


async def test_telegram_alerts_fail_only_when_no_admin_got_them(tmp_path: Path, sqlite_url: str) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, _, _):
        alerts = TelegramAlerts(RecordingPort(), Translator(("en", "zh_CN")), app.shop, admins=[666])
        with pytest.raises(RuntimeError):
            await alerts.alert("alert.out_of_stock", PARAMS)
