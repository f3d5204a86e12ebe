"""Broadcasts on SQLite and PostgreSQL (core/broadcast.py through a real store): who gets one (the segment, never an
opted-out buyer, never a WeChat buyer outside the 48-hour window), exactly once across a crash, and never ahead of
a delivery. The chat paths are tests/test_broadcast_chat.py."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import App
from core.broadcast import BroadcastError, Segment, parse
from core.clock import FakeClock
from core.models import Buyer
from handlers.broadcast import desk_of
from tests.dbtemplate import from_template
from tests.helpers import PROVIDER, SKU, RecordingGateway, RecordingNotifier, import_n, make_settings, pay, settle

BOSS = "telegram:1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def open_app(url: str, tmp_path: Path, clock: FakeClock, tg: RecordingNotifier, wx: RecordingNotifier
                   ) -> App:
    settings = make_settings(url, tmp_path)
    return await App.open(settings, clock=clock, notifiers={"telegram": tg, "wechat": wx},
                          gateways={PROVIDER: RecordingGateway()})


async def people(app: App, clock: FakeClock) -> None:
    """Telegram 1 (en), 2 (zh_CN, bought CARD-10), 3 (opted out); WeChat wa (wrote an hour ago), wb (50 hours
    ago), wc (never noted)."""
    shop = app.shop
    desk = desk_of(shop)
    for who, lang in (("1", "en"), ("2", "zh_CN"), ("3", "en")):
        await shop.save_customer(await shop.customer(Buyer("telegram", who), lang))
    for who in ("wa", "wb", "wc"):
        await shop.save_customer(await shop.customer(Buyer("wechat", who), "zh_CN"))
    clock.advance(hours=-50)
    await desk.seen(Buyer("wechat", "wb"))
    clock.advance(hours=49)
    await desk.seen(Buyer("wechat", "wa"))
    clock.advance(hours=1)
    await desk.set_news(Buyer("telegram", "3"), False)
    product = await shop.product_by_sku(SKU)
    assert product is not None
    order = await shop.reserve(Buyer("telegram", "2"), product.id, 1, "zh_CN", "2")
    await pay(app, order)
    await settle(app)


def received(n: RecordingNotifier) -> Counter[str]:
    return Counter(x.recipient for x in n.notices if x.key == "broadcast.message")


async def test_a_broadcast_reaches_exactly_its_segment(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    tg, wx = RecordingNotifier(), RecordingNotifier()
    app = await open_app(from_template(db_url), tmp_path, clock, tg, wx)
    try:
        await import_n(app, 3)
        await people(app, clock)
        desk = desk_of(app.shop)
        everyone = await desk.preview(BOSS, Segment(), "Sale!")
        assert everyone.counts == {"telegram": 2, "wechat": 1}  # not 3 (opted out), not wb/wc (window)
        assert (await desk.preview(BOSS, Segment(lang="zh_CN"), "x")).counts == {"telegram": 1, "wechat": 1}
        assert (await desk.preview(BOSS, Segment(channel="wechat"), "x")).counts == {"telegram": 0, "wechat": 1}
        assert (await desk.preview(BOSS, Segment(bought=SKU), "x")).counts == {"telegram": 1, "wechat": 0}
        with pytest.raises(BroadcastError) as exc:
            await desk.preview(BOSS, Segment(bought="NOPE"), "x")
        assert exc.value.reason == "unknown_product"
        assert (await desk.preview(BOSS, Segment(level=1), "x")).counts == {"telegram": 0, "wechat": 0}
        await app.shop.risk.set_level(Buyer("telegram", "2"), 2)  # member levels (core/members/)
        await app.shop.risk.set_level(Buyer("wechat", "wa"), 1)
        await app.shop.risk.set_level(Buyer("telegram", "3"), 3)  # opted out: never counted
        assert (await desk.preview(BOSS, Segment(level=1), "x")).counts == {"telegram": 1, "wechat": 1}
        assert (await desk.preview(BOSS, Segment(level=2), "x")).counts == {"telegram": 1, "wechat": 0}
        assert (await desk.preview(BOSS, Segment(level=3), "x")).counts == {"telegram": 0, "wechat": 0}

        zh = await desk.preview(BOSS, Segment(lang="zh_CN"), "新品上架")
        await desk.confirm(BOSS, zh.id)
        await settle(app)
        assert received(tg) == {"2": 1} and received(wx) == {"wa": 1}
        [note] = [n for n in tg.notices if n.key == "broadcast.message"]
        assert note.params == {"text": "新品上架"} and note.language == "zh_CN"

        # Confirmed twice (a double tap): queued once. Someone else's draft: not theirs to send.
        with pytest.raises(BroadcastError) as exc:
            await desk.confirm(BOSS, zh.id)
        assert exc.value.reason == "already_queued"
        with pytest.raises(BroadcastError) as exc:
            await desk.confirm("telegram:99", everyone.id)
        assert exc.value.reason == "unknown"
        progress = await desk.progress(zh.id)
        assert (progress.total, progress.sent, progress.failed, progress.done) == (2, 2, 0, True)

        # /news again: buyer 3 is back in; cancelled drafts send nothing.
        await desk.set_news(Buyer("telegram", "3"), True)
        assert await desk.wants_news(Buyer("telegram", "3"))
        again = await desk.preview(BOSS, Segment(channel="telegram"), "hello")
        assert again.counts["telegram"] == 3
        await desk.cancel(BOSS, everyone.id)
        with pytest.raises(BroadcastError):
            await desk.confirm(BOSS, everyone.id)
        await settle(app)
        assert sum(received(tg).values()) == 1
    finally:
        await app.close()


async def test_a_crash_mid_broadcast_sends_nobody_twice(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    tg, wx = RecordingNotifier(), RecordingNotifier()
    url = from_template(db_url)
    app = await open_app(url, tmp_path, clock, tg, wx)
    for n in range(20):
        await app.shop.save_customer(await app.shop.customer(Buyer("telegram", str(100 + n)), "en"))
    desk = desk_of(app.shop)
    b = await desk.preview(BOSS, Segment(), "news")
    await desk.confirm(BOSS, b.id)
    app.shop.dispatcher.batch = 5
    assert await app.shop.dispatcher.dispatch_once() == 5
    await app.db.dispose()  # the process dies here: no shutdown, no drain

    again = await open_app(url, tmp_path, clock, tg, wx)
    try:
        await settle(again)
        assert received(tg) == {str(100 + n): 1 for n in range(20)}
        with pytest.raises(BroadcastError):  # the restarted store does not queue it a second time
            await desk_of(again.shop).confirm(BOSS, b.id)
        assert (await desk_of(again.shop).progress(b.id)).sent == 20
    finally:
        await again.close()


async def test_deliveries_go_before_queued_broadcast_messages(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    tg, wx = RecordingNotifier(), RecordingNotifier()
    app = await open_app(from_template(db_url), tmp_path, clock, tg, wx)
    try:
        await import_n(app, 1)
        for n in range(5):
            await app.shop.save_customer(await app.shop.customer(Buyer("telegram", str(200 + n)), "en"))
        desk = desk_of(app.shop)
        await desk.confirm(BOSS, (await desk.preview(BOSS, Segment(), "later")).id)
        product = await app.shop.product_by_sku(SKU)
        assert product is not None
        order = await app.shop.reserve(Buyer("telegram", "200"), product.id, 1, "en", "200")
        await pay(app, order)  # its delivery is queued after the five broadcast messages
        app.shop.dispatcher.batch = 1
        assert await app.shop.dispatcher.dispatch_once() == 1
        assert len(tg.delivered_to("200")) == 1 and not received(tg)
        await settle(app)
        assert sum(received(tg).values()) == 5
    finally:
        await app.close()


def test_filters_and_text_are_parsed_and_bad_ones_refused() -> None:
    assert parse("lang=zh_CN channel=wechat bought=GAME Hello there") == (
        Segment("zh_CN", "wechat", "GAME"), "Hello there")
    assert parse("Hello lang=en") == (Segment(), "Hello lang=en")  # filters only lead
    assert parse("level=2 Gold only") == (Segment(level=2), "Gold only")
    for bad, reason in (("", "empty"), ("lang=en", "empty"), ("level=0 hi", "filter"), ("level=two hi", "filter"),
                        ("level=-1 hi", "filter"), ("tier=2 hi", "filter"), ("channel=sms hi", "filter"),
                        ("lang=en lang=zh_CN hi", "filter"), ("x" * 2000, "too_long")):
        with pytest.raises(BroadcastError) as exc:
            parse(bad)
        assert exc.value.reason == reason, bad
