"""The menu's "Open shop" Mini App button is Telegram's alone: the channels that number their options (WeChat, the
terminal) neither show it nor shift their numbers for it, and Telegram renders it as a web_app button."""
from __future__ import annotations

from bots.console import render as console_render
from bots.telegram.common import render as telegram_render
from bots.wechat.frontend import render as wechat_render
from handlers.screen import Action, Screen
from locales import Translator

URL = "https://shop.example/app/"


def menu(with_shop: bool) -> Screen:
    rows = [[Action("catalog", "Catalogue")], [Action("orders:0", "My orders")]]
    if with_shop:
        rows.insert(0, [Action("menu", "Open shop", web_app=URL)])
    return Screen("Menu", "Pick one", actions=rows)


def test_numbered_channels_leave_the_mini_app_button_out() -> None:
    i18n = Translator()
    assert [a.id for a in menu(True).flat_actions()] == ["catalog", "orders:0"]
    assert wechat_render(menu(True), i18n, "en") == wechat_render(menu(False), i18n, "en")
    assert console_render(menu(True), i18n, "en", False) == console_render(menu(False), i18n, "en", False)
    assert "Open shop" not in wechat_render(menu(True), i18n, "en")


def test_telegram_renders_it_as_a_web_app_button() -> None:
    [msg] = telegram_render(menu(True))
    first = msg.buttons[0][0]
    assert (first.text, first.web_app, first.callback_data) == ("Open shop", URL, None)
    assert [b.callback_data for row in msg.buttons[1:] for b in row] == ["catalog", "orders:0"]
