"""Webhook mode: only Telegram (with the secret token) gets in; re-sent updates are handled once."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import App
from bots.http import HttpServer, webhook_path
from config.settings import parse_settings
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import CATALOG, TOKEN

SECRET = "s3cret-Token_1"


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_given_webhook_mode_then_right_secret_is_served_and_wrong_or_missing_secret_is_refused(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    settings = parse_settings({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'wh.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "telegram": {"token": TOKEN, "api_base": api.base, "library": library, "mode": "webhook",
                     "webhook": {"url": "https://shop.example.com/tg/hook", "secret": SECRET}},
        "catalog": CATALOG}, tmp_path, env={})
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        server = HttpServer("127.0.0.1", 0)
        server.add_telegram(runtime, webhook_path(settings.telegram.webhook.url), SECRET)
        await server.start()
        try:
            await runtime.set_webhook(settings.telegram.webhook.url, SECRET)
            assert api.webhook == {"url": "https://shop.example.com/tg/hook", "secret_token": SECRET}
            url = f"http://127.0.0.1:{server.port}/tg/hook"
            ann = api.user(701)

            forged = api.message_update(ann, "/start")
            assert await api.post_update_to(url, forged, secret="wrong") == 403
            assert await api.post_update_to(url, forged) == 401
            assert api.calls("sendMessage") == []

            start = api.message_update(ann, "/start")
            assert await api.post_update_to(url, start, secret=SECRET) == 200
            assert await api.post_update_to(url, start, secret=SECRET) == 200  # Telegram re-sends it
            sent = [c for c in api.calls("sendMessage") if c.params["chat_id"] == 701]
            assert len(sent) == 1 and "Welcome" in sent[0].params["text"]
        finally:
            await server.stop()
            await runtime.stop()


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_given_two_copies_of_one_update_at_the_same_time_then_it_is_handled_once_and_both_are_answered_ok(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    settings = parse_settings({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'wh.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "telegram": {"token": TOKEN, "api_base": api.base, "library": library, "mode": "webhook",
                     "webhook": {"url": "https://shop.example.com/tg/hook", "secret": SECRET}},
        "catalog": CATALOG}, tmp_path, env={})
    async with await App.open(settings) as app:
        runtime = app.add_telegram()
        server = HttpServer("127.0.0.1", 0)
        server.add_telegram(runtime, webhook_path(settings.telegram.webhook.url), SECRET)
        await server.start()
        try:
            url = f"http://127.0.0.1:{server.port}/tg/hook"
            start = api.message_update(api.user(702), "/start")
            # Telegram sends an update again when the first answer is slow: both copies arrive together.
            statuses = await asyncio.gather(*(api.post_update_to(url, start, secret=SECRET) for _ in range(2)))
            assert statuses == [200, 200]
            sent = [c for c in api.calls("sendMessage") if c.params["chat_id"] == 702]
            assert len(sent) == 1 and "Welcome" in sent[0].params["text"]
        finally:
            await server.stop()
            await runtime.stop()


def test_webhook_path_comes_from_the_configured_url() -> None:
    assert webhook_path("https://shop.example.com/tg/hook") == "/tg/hook"
    assert webhook_path("https://shop.example.com") == "/telegram/webhook"
