"""The bot's own face in Telegram (bots/telegram/face.py): at start, through aiogram and python-telegram-bot against
the fake Bot API, the "/" menu for buyers and (in each merchant's chat) for merchants, the description and the short
description, per language; `/terms` and the other buyer commands answered; Telegram refusing it is a warning and the
store runs on; `run.py telegram setup` as a real process."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from app import App
from bots.telegram.face import BUYER_COMMANDS, fit, merchant_commands, set_face_quietly, utf16_len
from handlers.admin import COMMANDS as ADMIN_COMMANDS
from locales import Translator
from tests.fake_bot_api import FakeBotAPI
from tests.helpers import run_cli
from tests.redis_kit import redis_prefix  # noqa: F401 - a fixture used by name
from tests.telegram_harness import TOKEN, Shopfront, store_settings

I18N = Translator(("en", "zh_CN"))
CATEGORISED = [
    {"sku": "NETFLIX", "title": "Netflix 1 month", "price": 3000, "stars": 200,
     "category": {"en": "Streaming memberships", "zh_CN": "视频会员"}},
    {"sku": "STEAM", "title": "Steam 100", "price": 10000, "stars": 700,
     "category": {"en": "Game cards", "zh_CN": "游戏点卡"}},
]


def buyer_menu(lang: str) -> list[tuple[str, str]]:
    return [(c, I18N.t(lang, f"face.buyer.{c}")) for c in BUYER_COMMANDS]


async def face_set(shop: Shopfront) -> bool:
    task = shop.runtime.face.task
    assert task is not None, "the face was not started with the store"
    return await asyncio.wait_for(task, 10)


async def test_the_start_sets_the_menu_and_descriptions_per_language_and_each_merchants_own_menu(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, admins=[1, 2], extra={"catalog": CATEGORISED}) as shop:
        assert await face_set(shop) is True
        # buyers: the default (no language_code: store.default_language, en), en and zh
        assert api.my_commands("") == buyer_menu("en") == api.my_commands("en")
        assert api.my_commands("zh") == buyer_menu("zh_CN")
        assert [c for c, _ in api.my_commands("zh")] == ["start", "orders", "help", "language", "paysupport",
                                                         "terms", "mydata"]
        # each merchant: in their own chat, every merchant command (/console, /report, /export ...) and the buyers'
        for merchant in (1, 2):
            for code, lang in (("", "en"), ("en", "en"), ("zh", "zh_CN")):
                menu = dict(api.my_commands(code, chat_id=merchant))
                assert {c.lstrip("/") for c in ADMIN_COMMANDS} | {"console"} | set(BUYER_COMMANDS) == set(menu)
                assert len(menu) == len(api.my_commands(code, chat_id=merchant))  # each once
                assert menu["report"] == I18N.t(lang, "face.admin.report")
                assert menu["orders"] == I18N.t(lang, "face.admin.orders")  # a merchant's /orders is the admin one
                assert menu["terms"] == I18N.t(lang, "face.buyer.terms")
        assert api.my_commands("", chat_id=3) == []  # a buyer's chat has no menu of its own
        scopes = {c.params.get("scope", {}).get("type", "default") for c in api.calls("setMyCommands")}
        assert scopes == {"default", "chat"}
        # the descriptions: the shop's name and its categories, in each language, within Telegram's limits
        assert set(api.descriptions) == set(api.short_descriptions) == {"", "en", "zh"}
        assert "TG Shop" in api.descriptions["en"] and "Streaming memberships" in api.descriptions["en"]
        assert "视频会员" in api.descriptions["zh"] and "游戏点卡" in api.short_descriptions["zh"]
        assert "/paysupport" in api.descriptions["zh"] and "/terms" in api.descriptions["en"]
        assert api.descriptions[""] == api.descriptions["en"]
        assert all(utf16_len(t) <= 512 for t in api.descriptions.values())
        assert all(utf16_len(t) <= 120 for t in api.short_descriptions.values())


async def test_long_words_are_cut_to_telegrams_limits_and_still_accepted(api: FakeBotAPI, tmp_path: Path,
                                                                          library: str) -> None:
    many = [{"sku": f"S{i}", "title": f"Item {i}", "price": 100,
             "category": {"en": f"Category number {i} with a long name 🎮",
                          "zh_CN": f"第{i}类超长名字的虚拟商品卡券🎮"}}
            for i in range(40)]
    async with Shopfront(api, tmp_path, library=library, extra={
            "store": {"name": "The Very Long Named Digital Voucher Emporium 🎁 " * 3, "support": "@help"},
            "catalog": many}) as shop:
        assert await face_set(shop) is True  # the fake refuses texts over the limits, as Telegram does
        for lang in ("", "en", "zh"):
            assert 0 < utf16_len(api.descriptions[lang]) <= 512
            assert 0 < utf16_len(api.short_descriptions[lang]) <= 120
        assert "Category number 0" in api.descriptions["en"] and api.short_descriptions["en"].endswith("…")


def test_fit_cuts_at_a_word_or_a_character_and_never_splits_an_emoji() -> None:
    assert fit("short", 120) == "short"
    cut = fit("word " * 40, 50)
    assert utf16_len(cut) <= 50 and cut.endswith("word…")
    zh = fit("虚拟商品" * 50, 120)
    assert utf16_len(zh) <= 120 and zh.endswith("…")
    emoji = fit("🎮" * 100, 11)  # each emoji is two UTF-16 units
    assert emoji == "🎮" * 5 + "…"


def test_every_merchant_command_has_its_words_in_both_languages() -> None:
    for lang in ("en", "zh_CN"):
        for c in merchant_commands():
            assert I18N.t(lang, f"face.admin.{c}") != f"face.admin.{c}", (lang, c)
        for c in BUYER_COMMANDS:
            assert I18N.t(lang, f"face.buyer.{c}") != f"face.buyer.{c}", (lang, c)


async def test_terms_answers_the_configured_text_in_the_buyers_language(api: FakeBotAPI, tmp_path: Path,
                                                                        library: str) -> None:
    terms = {"en": "All sales final once a code is shown.", "zh_CN": "卡密显示后不支持无理由退款。"}
    async with Shopfront(api, tmp_path, library=library,
                         extra={"store": {"name": "TG Shop", "support": "@help", "terms": terms}}) as shop:
        for user_id, lang, text in ((601, "en", terms["en"]), (602, "zh", terms["zh_CN"])):
            mark = api.mark()
            await shop.send(api.message_update(api.user(user_id, language_code=lang), "/terms"))
            msg = await api.wait_for("sendMessage", lambda c, u=user_id: c.params["chat_id"] == u, since=mark)
            assert text in msg.params["text"]


async def test_every_buyer_command_of_the_menu_is_answered(api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    """No store.terms: /terms has the default text; /help and /paysupport answer too (Telegram asks sellers of
    digital goods for both)."""
    async with Shopfront(api, tmp_path, library=library) as shop:
        ann = api.user(603)
        answers = {}
        for command in BUYER_COMMANDS:
            mark = api.mark()
            await shop.send(api.message_update(ann, f"/{command}"))
            msg = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 603, since=mark)
            answers[command] = msg.params["text"]
        assert "sells digital goods" in answers["terms"] and "TG Shop" in answers["terms"]
        assert "@help" in answers["terms"] and "@help" in answers["paysupport"] and "@help" in answers["help"]
        assert "Terms of sale" in answers["terms"]
        assert len(set(answers.values())) == len(answers)  # each command its own answer, none the fallback twice


async def test_telegram_refusing_the_face_is_a_warning_and_the_store_runs_on(
        api: FakeBotAPI, tmp_path: Path, library: str, caplog: pytest.LogCaptureFixture) -> None:
    api.fail_next("setMyDescription", 400, description="Bad Request: BOT_DESCRIPTION_INVALID")
    with caplog.at_level(logging.WARNING, logger="bots.telegram.face"):
        async with Shopfront(api, tmp_path, library=library) as shop:
            assert await face_set(shop) is False
            mark = api.mark()
            await shop.send(api.message_update(api.user(604), "/start"))
            menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 604, since=mark)
            assert "TG Shop" in menu.params["text"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "bots.telegram.face"]
    assert len(warnings) == 1 and "bot_description_invalid" in warnings[0].getMessage().lower()


async def test_an_unreachable_bot_api_does_not_hold_up_the_start(tmp_path: Path, library: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The face runs in the background: the start returns while Telegram has not answered."""
    async with FakeBotAPI(token=TOKEN) as api:
        api.fail_next("setMyCommands", 500, times=1)
        with caplog.at_level(logging.WARNING, logger="bots.telegram.face"):
            async with Shopfront(api, tmp_path, library=library) as shop:
                assert await face_set(shop) is False
                assert api.descriptions == {}  # the first refusal stops the rest; the next start tries again


async def test_processes_of_one_bot_on_redis_set_the_face_once_and_a_failed_attempt_lets_the_next_one_try(
        api: FakeBotAPI, tmp_path: Path, redis_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_prefix
    shared = {"redis": {"url": url, "prefix": prefix}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    api.fail_next("setMyCommands", 500, times=1)
    async with Shopfront(api, tmp_path / "a", extra=shared) as first:
        assert await face_set(first) is False  # refused: the claim is given back
        other = await App.open(store_settings(api, tmp_path / "b", extra=shared))  # a second process of the bot
        try:
            assert await set_face_quietly(first.runtime.port, other.settings, other.shop, I18N) is True
            assert api.my_commands("zh") == buyer_menu("zh_CN")  # the second one set it
            calls = len(api.calls("setMyCommands"))
            # a third process starting within a minute leaves it to the one that set it
            assert await set_face_quietly(first.runtime.port, first.settings, first.app.shop, I18N) is True
            assert len(api.calls("setMyCommands")) == calls
        finally:
            await other.close()


# -- `run.py telegram setup` as a real process ------------------------------------------------------------------
def write_config(tmp_path: Path, api: FakeBotAPI | None, **telegram: object) -> Path:
    cfg = tmp_path / "config.yaml"
    tg = {"token": TOKEN, "api_base": api.base, **telegram} if api is not None else {}
    cfg.write_text(yaml.safe_dump({
        "store": {"name": "CLI Shop", "support": "@help"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "telegram": tg,
        "catalog": CATEGORISED,
    }, allow_unicode=True))
    return cfg


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_telegram_setup_sets_the_face_once_and_says_so(tmp_path: Path, library: str) -> None:
    async with FakeBotAPI(token=TOKEN) as api:
        cfg = write_config(tmp_path, api, library=library, admins=[11])
        done = await asyncio.to_thread(run_cli, cfg, "telegram", "setup")
        assert done.returncode == 0, done.stderr
        assert "commands and descriptions set in Telegram (3 languages, 1 merchants)" in done.stdout
        assert api.my_commands("zh") == buyer_menu("zh_CN")
        assert "console" in dict(api.my_commands("en", chat_id=11))
        assert "CLI Shop" in api.descriptions["zh"] and "Game cards" in api.short_descriptions["en"]
        assert not api.calls("getUpdates")  # once and out: no polling

        api.fail_next("setMyCommands", 400, description="Bad Request: BOT_COMMAND_INVALID")
        refused = await asyncio.to_thread(run_cli, cfg, "telegram", "setup")
        assert refused.returncode == 1
        assert "Telegram refused" in refused.stderr and "bot_command_invalid" in refused.stderr.lower()


def test_telegram_setup_without_a_token_is_exit_2(tmp_path: Path) -> None:
    done = run_cli(write_config(tmp_path, None), "telegram", "setup")
    assert done.returncode == 2 and "telegram.token is not set" in done.stderr
