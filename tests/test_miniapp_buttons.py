"""The menu's "Open shop" Mini App button is Telegram's alone: the channels that number their options (WeChat, the
terminal) neither show it nor shift their numbers for it, and Telegram renders it as a web_app button. The fake Bot
API refuses invoice links and web_app buttons as Telegram does."""
from __future__ import annotations

import aiohttp

from bots.console import render as console_render
from bots.telegram.common import render as telegram_render
from bots.wechat.frontend import render as wechat_render
from handlers.screen import Action, Screen
from locales import Translator
from tests.fake_bot_api import FakeBotAPI

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


async def test_the_fake_bot_api_refuses_what_telegram_refuses_for_mini_apps() -> None:
    """What the Mini App's calls must get right, or Telegram answers 400: the fake says so too."""
    async with FakeBotAPI(token="777:ABC") as api, aiohttp.ClientSession() as http:
        async def call(method: str, **params: object) -> tuple[int, dict]:
            async with http.post(f"{api.base}/bot777:ABC/{method}", json=params) as r:
                return r.status, await r.json()

        good = {"title": "Game card", "description": "Order 1", "payload": "261205ABCDEFGH", "currency": "XTR",
                "prices": [{"label": "Game card × 1", "amount": 70}]}
        status, answer = await call("createInvoiceLink", **good)
        assert status == 200 and answer["result"].startswith("https://t.me/$")
        assert api.invoice_of(answer["result"])["total_amount"] == 70
        for bad in ({"title": "x" * 33}, {"title": ""}, {"description": "x" * 256}, {"payload": "x" * 129},
                    {"payload": ""}, {"provider_token": "tok"}, {"currency": "USD"},
                    {"prices": [{"label": "a", "amount": 1}, {"label": "b", "amount": 1}]}):
            status, answer = await call("createInvoiceLink", **{**good, **bad})
            assert (status, answer["ok"]) == (400, False), bad
        assert len(api.invoice_links) == 1

        https = {"type": "web_app", "text": "Shop", "web_app": {"url": URL}}
        assert (await call("setChatMenuButton", menu_button=https))[0] == 200
        status, answer = await call("getChatMenuButton")
        assert answer["result"] == https
        for bad_button in ({**https, "web_app": {"url": "http://shop.example/app/"}}, {**https, "text": ""}):
            assert (await call("setChatMenuButton", menu_button=bad_button))[0] == 400
        status, _ = await call("sendMessage", chat_id=5, text="menu", reply_markup={"inline_keyboard": [[
            {"text": "Open shop", "web_app": {"url": "http://shop.example/app/"}}]]})
        assert status == 400
        status, _ = await call("sendMessage", chat_id=5, text="menu", reply_markup={"inline_keyboard": [[
            {"text": "Open shop", "web_app": {"url": URL}}]]})
        assert status == 200
