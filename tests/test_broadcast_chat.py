"""/broadcast in the chat, end to end: Telegram (aiogram and python-telegram-bot against the local fake Bot API)
and WeChat (tests/fake_wechat_api.py). The merchant previews, confirms, sees the progress and the summary; buyers
get the text with its unsubscribe line, and /stop_news keeps them out. Storage and the outbox's guarantees:
tests/test_broadcast.py."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.fake_wechat_api import FakeWeChatAPI
from tests.telegram_harness import Shopfront, data_of
from tests.wechat_harness import ADMIN, APPID, SECRET, WeChatShop

BOSS = 1


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def test_a_merchant_broadcasts_on_telegram_and_opted_out_buyers_get_nothing(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        boss, ann, bo, cy = api.user(BOSS), api.user(501), api.user(502), api.user(503)

        async def say(user: dict, text: str) -> str:
            mark = api.mark()
            await shop.send(api.message_update(user, text))
            return (await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == user["id"],
                                       since=mark)).params["text"]

        for u in (boss, ann, bo, cy):
            await say(u, "/start")
        assert "/news" in await say(cy, "/stop_news")

        # Refusals: not a merchant; no text; a filter there is none of.
        assert "merchants only" in await say(ann, "/broadcast Free codes!")
        assert "/broadcast [lang=zh_CN]" in await say(boss, "/broadcast")
        assert "no text" in await say(boss, "/broadcast lang=en")
        assert "Unknown filter: tier=2" in await say(boss, "/broadcast tier=2 Hi")
        gold = await say(boss, "/broadcast level=2 Gold only")  # member level 2 or higher: nobody yet
        assert "level=2" in gold and "Recipients: 0" in gold

        preview = await say(boss, "/broadcast Big sale today")
        assert "Recipients: 3 (Telegram 3, WeChat 0)" in preview and "Big sale today" in preview
        send, shown = data_of(api.calls("sendMessage")[-1], "Send"), api.last_message(BOSS)
        mark = api.mark()
        await shop.send(api.callback_update(boss, send, shown))
        summary = await api.wait_for("editMessageText", lambda c: c.params["chat_id"] == BOSS
                                     and "finished" in c.params["text"], since=mark, timeout=15)
        assert "3 sent, 0 skipped, 0 failed (of 3)" in summary.params["text"]
        news = [c.params for c in api.calls_since(mark, "sendMessage") if "Big sale today" in c.params["text"]]
        assert sorted(p["chat_id"] for p in news) == [BOSS, 501, 502]
        assert all("Unsubscribe: /stop_news" in p["text"] for p in news)

        # A second tap on Send queues nothing again.
        again = api.mark()
        await shop.send(api.callback_update(boss, send, shown))
        answer = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BOSS, since=again)
        assert "sent already" in answer.params["text"]
        assert not [c for c in api.calls_since(again, "sendMessage") if "Big sale today" in c.params["text"]]

        # /news: the buyer is counted in again.
        assert "/stop_news" in await say(cy, "/news")
        assert "Recipients: 4" in await say(boss, "/broadcast Back again")


async def test_wechat_broadcasts_reach_only_buyers_inside_the_48_hour_window(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, clock=clock) as shop:
        for openid in ("o-old", "o-old"):
            await shop.wx.text(openid, "hi")
        clock.advance(hours=49)
        for openid in ("o-ann", "o-ann", "o-out", "o-out", ADMIN):
            await shop.wx.text(openid, "hi")
        assert "/news" in await shop.wx.text("o-out", "/stop_news")
        await shop.idle()

        preview = await shop.wx.text(ADMIN, "/broadcast channel=wechat 新品上架")
        assert "微信 2" in preview  # o-ann and the merchant: not o-old (50 hours), not o-out (opted out)
        send = next(line.split(": ", 1)[1] for line in preview.splitlines() if "/broadcast send" in line)
        queued = await shop.wx.text(ADMIN, send)
        assert "已排队 2 条" in queued
        await eventually(lambda: any("新品上架" in t for t in api.texts("o-ann")))
        assert any("退订通知：/stop_news" in t for t in api.texts("o-ann"))
        assert not any("新品上架" in t for t in api.texts("o-old") + api.texts("o-out"))
        await eventually(lambda: any("已完成" in t for t in api.texts(ADMIN)))
        [summary] = [t for t in api.texts(ADMIN) if "已完成" in t]
        assert "成功 2" in summary and "失败 0" in summary


TEMPLATE = {"template_id": "TPL_notice_01", "text_field": "keyword1",
            "fields": {"first": "{shop} 公告", "keyword2": "{date}", "remark": "回复 /stop_news 退订"},
            "url": "https://shop.example.com/h5/"}


async def test_with_a_template_message_buyers_outside_the_window_get_the_broadcast_as_that_template(
        tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    async with FakeWeChatAPI(APPID, SECRET) as api, \
            WeChatShop(api, tmp_path, clock=clock, wechat={"broadcast_template": TEMPLATE}) as shop:
        for openid in ("o-old", "o-left", "o-quit"):
            await shop.wx.text(openid, "hi")
        assert "/news" in await shop.wx.text("o-quit", "/stop_news")
        clock.advance(hours=49)
        await shop.wx.text("o-ann", "hi")
        await shop.wx.text(ADMIN, "hi")
        api.unsubscribed.add("o-left")  # unfollowed the account since: WeChat answers 43004
        await shop.idle()
        before = len(api.texts("o-old"))

        preview = await shop.wx.text(ADMIN, "/broadcast channel=wechat 周末补货：新卡已到")
        assert "微信 4" in preview and "模板消息 2" in preview  # not o-quit (opted out)
        send = next(line.split(": ", 1)[1] for line in preview.splitlines() if "/broadcast send" in line)
        assert "已排队 4 条" in await shop.wx.text(ADMIN, send)
        await eventually(lambda: any("已完成" in t for t in api.texts(ADMIN)))
        [summary] = [t for t in api.texts(ADMIN) if "已完成" in t]
        assert "成功 3" in summary and "失败 1" in summary  # o-left cannot be reached

        assert any("周末补货" in t for t in api.texts("o-ann")) and api.templates("o-ann") == []
        [tpl] = api.templates("o-old")
        assert tpl["template_id"] == "TPL_notice_01" and tpl["url"] == "https://shop.example.com/h5/"
        assert tpl["data"]["keyword1"]["value"] == "周末补货：新卡已到"
        assert tpl["data"]["keyword2"]["value"] == "2026-03-03" and tpl["data"]["first"]["value"].endswith(" 公告")
        assert len(api.texts("o-old")) == before  # no customer-service message outside the window
        assert api.templates("o-quit") == [] and api.templates("o-left") == []


async def test_without_a_template_the_preview_says_nothing_of_templates_and_counts_only_the_window(
        tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path, clock=clock) as shop:
        await shop.wx.text("o-old", "hi")
        clock.advance(hours=49)
        await shop.wx.text(ADMIN, "hi")
        await shop.idle()
        preview = await shop.wx.text(ADMIN, "/broadcast channel=wechat 新品")
        assert "微信 1" in preview and "模板消息" not in preview


@pytest.mark.parametrize("text", ["/broadcast", "/broadcast bought=GAME"])
async def test_a_wechat_buyer_cannot_broadcast_and_a_merchant_gets_the_usage(tmp_path: Path, text: str) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path) as shop:
        assert "/broadcast [lang=zh_CN]" in await shop.wx.text(ADMIN, text)
        assert "仅限本店商家" in await shop.wx.text("o-ann", text)
