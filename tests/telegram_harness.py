"""Shared harness for the Telegram end-to-end tests: a real store with the configured library (aiogram or
python-telegram-bot) polling a local fake Bot API (tests/fake_bot_api/).

`Shopfront.send(update)` returns once the store has fully handled the update: aiogram (handle_as_tasks=False)
confirms an update only after its handler finished; PTB confirms on fetch, so for PTB a last handler group
marks each update as done. Handler exceptions (which both libraries would only log while polling) are
recorded and fail the test on exit.
"""
from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import TypeHandler

from app import App
from config.settings import Settings, parse_settings
from core.clock import FakeClock
from core.supply import import_codes
from tests.dbtemplate import from_template
from tests.fake_bot_api import FakeBotAPI

TOKEN = "777:ABC"
CATALOG = [
    {"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000, "stars": 70, "max_qty": 3},
    {"sku": "NOSTARS", "title": "Web only", "price": 500},
]
# Telegram's outbound rates (one message a second per chat after a burst of 3) would make every scenario wait
# about a second per reply on the real clock, though none of them is about pacing: the harness lifts them, as
# the settings allow for a local test server. The pacing itself has its own tests (tests/test_telegram_limits.py);
# a scenario that passes `telegram={"limits": ...}` gets those limits.
UNPACED = {"overall_per_second": 100_000, "per_chat_burst": 100_000, "group_per_minute": 100_000}


def store_settings(api: FakeBotAPI, tmp_path: Path, *, library: str = "aiogram",
                   admins: list[int] | None = None, telegram: dict | None = None,
                   extra: dict | None = None) -> Settings:
    """A store on a SQLite file in tmp_path whose Telegram bot talks to the fake API. `extra` adds config
    sections (e.g. `suppliers`) and `extra["catalog"]` products after the standard ones."""
    more = dict(extra or {})
    return parse_settings({
        "store": {"name": "TG Shop", "support": "@help"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'tg.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "telegram": {"token": TOKEN, "api_base": api.base, "library": library,
                     "admins": [1] if admins is None else admins, "limits": UNPACED, **(telegram or {})},
        "catalog": CATALOG + more.pop("catalog", []), **more}, tmp_path, env={})


class Shopfront:
    """The store process: App + the chosen library's bot polling the fake API."""

    def __init__(self, api: FakeBotAPI, tmp_path: Path, clock: FakeClock | None = None, *,
                 library: str = "aiogram", admins: list[int] | None = None, telegram: dict | None = None,
                 extra: dict | None = None) -> None:
        self.api = api
        self.library = library
        self.settings = store_settings(api, tmp_path, library=library, admins=admins, telegram=telegram,
                                       extra=extra)
        self.clock = clock
        self.errors: list[str] = []       # handler exceptions, formatted
        self._handled: dict[int, asyncio.Event] = {}  # PTB: update_id -> all handler groups done

    async def __aenter__(self) -> Shopfront:
        from_template(self.settings.database_url_resolved())  # a new SQLite file starts migrated
        self.app = await App.open(self.settings, clock=self.clock)
        # Updates handled one at a time (aiogram: a confirmed update has been fully handled; PTB: see send()).
        self.runtime = self.app.add_telegram(concurrent_updates=False)
        watch_handlers(self.runtime, self.errors, self._done)
        await self.app.shop.start()
        await self.runtime.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.runtime.stop()
        finally:
            await self.app.close()
        if exc[0] is None:
            assert not self.errors, "handler exceptions:\n" + "\n".join(self.errors)

    def _done(self, update_id: int) -> None:
        self._handled.setdefault(update_id, asyncio.Event()).set()

    async def stock(self, n: int, prefix: str = "TG") -> list[str]:
        codes = [f"{prefix}-{i:04d}" for i in range(n)]
        await import_codes(self.app.db.uow, self.app.vault, self.app.clock, "GAME",
                           [(c + "\n").encode() for c in codes])
        return codes

    async def send(self, update: dict, timeout: float = 5.0) -> dict:
        """Queue an update and return once the store has handled it."""
        self.api.push_update(update)
        if self.library == "ptb":
            done = self._handled.setdefault(update["update_id"], asyncio.Event())
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except TimeoutError:
                raise TimeoutError(f"update {update['update_id']} not handled within {timeout}s") from None
        else:
            await self.api.wait_confirmed(update, timeout)
        return update


def watch_handlers(runtime: Any, errors: list[str], done: Any) -> None:
    """Record handler exceptions of either runtime; for PTB also report each finished update to `done`."""
    if hasattr(runtime, "application"):  # PtbRuntime
        async def record_ptb(update: object, context: Any) -> None:
            errors.append("".join(traceback.format_exception(context.error)))

        async def finished(update: Update, context: Any) -> None:
            done(update.update_id)

        runtime.application.add_error_handler(record_ptb)
        # Groups run in ascending order, each awaited (blocking handlers), errors included: this one runs last.
        runtime.application.add_handler(TypeHandler(Update, finished), group=1_000_000)
        return

    async def record_aiogram(event: Any) -> bool:
        errors.append("".join(traceback.format_exception(event.exception)))
        return True

    runtime.dp.errors.register(record_aiogram)


def buttons(call) -> list[dict]:
    return [b for row in call.params.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def data_of(call, text: str) -> str:
    return next(b["callback_data"] for b in buttons(call) if b["text"] == text)


async def fake_api():
    async with FakeBotAPI(token=TOKEN) as fake:
        yield fake


