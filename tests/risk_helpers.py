"""Helpers for the rules and risk tests: a whole store (real database, FakeClock) with a `risk:` section and
products carrying `rules:`."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import App
from config.settings import parse_settings
from core.clock import FakeClock
from core.errors import StoreError
from tests.helpers import CHANNEL, PROVIDER, RecordingGateway, RecordingNotifier

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


def product(sku: str, price: int = 1000, max_qty: int = 5, **rules: Any) -> dict[str, Any]:
    return {"sku": sku, "title": {"en": sku, "zh_CN": sku}, "price": price, "kind": "code", "max_qty": max_qty,
            "rules": rules}


@asynccontextmanager
async def open_guarded(url: str, tmp_path: Path, catalog: Sequence[dict[str, Any]], *,
                       risk: dict[str, Any] | None = None, clock: FakeClock | None = None,
                       store: dict[str, Any] | None = None) -> AsyncIterator[tuple[Any, RecordingNotifier,
                                                                                    RecordingGateway]]:
    """A store on `url` with `catalog`, the `risk:` section given (defaults otherwise) and a FakeClock."""
    settings = parse_settings({"store": {"demo": True, **(store or {})}, "database": {"url": url},
                               "vault": {"key_file": str(tmp_path / "vault.key")}, "catalog": list(catalog),
                               "risk": risk or {}}, tmp_path, env={})
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, clock=clock or FakeClock(START), notifiers={CHANNEL: notifier},
                         gateways={PROVIDER: gateway})
    try:
        yield app, notifier, gateway
    finally:
        await app.close()


async def refusal(coro: Any) -> StoreError:
    """The StoreError a call raises (fails the test when it does not)."""
    try:
        result = await coro
    except StoreError as exc:
        return exc
    raise AssertionError(f"expected a refusal, got {result!r}")
