"""Shared harness for the Telegram end-to-end tests: a real store with the configured library polling
a local fake Bot API (tests/fake_bot_api.py)."""
from __future__ import annotations

from pathlib import Path


from bots.telegram.wiring import build_telegram
from core.clock import FakeClock
from core.inventory import import_codes
from core.settings import parse_settings
from run import App
from tests.fake_bot_api import FakeBotAPI

TOKEN = "777:ABC"
CATALOG = [
    {"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000, "stars": 70, "max_qty": 3},
    {"sku": "NOSTARS", "title": "Web only", "price": 500},
]


class Shopfront:
    """The store process: App + aiogram dispatcher polling the fake API."""

    def __init__(self, api: FakeBotAPI, tmp_path: Path, clock: FakeClock | None = None, *,
                 library: str = "aiogram", admins: list[int] | None = None) -> None:
        self.api = api
        self.settings = parse_settings({
            "store": {"name": "TG Shop", "support": "@help"},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'tg.db'}"},
            "vault": {"key_file": str(tmp_path / "vault.key")},
            "telegram": {"token": TOKEN, "api_base": api.base, "library": library,
                         "admins": [1] if admins is None else admins},
            "catalog": CATALOG}, tmp_path, env={})
        self.clock = clock

    async def __aenter__(self) -> Shopfront:
        self.app = await App.open(self.settings, clock=self.clock)
        # Updates handled one at a time: a confirmed update has been fully handled.
        self.runtime = build_telegram(self.settings, self.app, concurrent_updates=False)
        await self.app.shop.start()
        await self.runtime.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.stop()
        await self.app.close()

    async def stock(self, n: int, prefix: str = "TG") -> list[str]:
        codes = [f"{prefix}-{i:04d}" for i in range(n)]
        await import_codes(self.app.db.uow, self.app.vault, self.app.clock, "GAME", [(c + "\n").encode() for c in codes])
        return codes

    async def send(self, update: dict) -> dict:
        self.api.push_update(update)
        await self.api.wait_confirmed(update)
        return update


def buttons(call) -> list[dict]:  # noqa: ANN001
    return [b for row in call.params.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def data_of(call, text: str) -> str:  # noqa: ANN001
    return next(b["callback_data"] for b in buttons(call) if b["text"] == text)


async def fake_api():  # noqa: ANN201 - an async generator fixture body for test modules
    async with FakeBotAPI(token=TOKEN) as fake:
        yield fake


