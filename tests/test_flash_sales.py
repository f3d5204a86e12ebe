"""Flash sales (core/flash_sales.py): a product at a price of its own in a window, with an exact unit cap and a
per-buyer limit (linked accounts are one person), through the one order pipeline. Real SQLite and PostgreSQL (two
stores on one database for the race), FakeClock for the window's edges; the merchant's /flash and config.yaml."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import App
from config.settings import ConfigError
from core.admin import Merchant
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.flash_sales import LIMIT, LIVE, SOLD_OUT, UPCOMING, FlashDesk, FlashSale, SaleSpec
from core.links import shown
from core.models import Buyer, Order
from handlers.admin import AdminFlow
from handlers.merchant import AdminCtx
from locales import Translator
from tests.helpers import (
    SKU,
    buyer,
    import_n,
    make_settings,
    notice_for,
    open_shop,
    order_status,
    pay,
    product_id,
    settle,
    stock_of,
)

FLASH = {"flash": "1"}  # the buyer tapped the flash-price button
BOSS = Merchant("test", "boss")


async def _sale(app: Any, *, units: int, per_buyer: int = 1, price: int = 500, stars: int | None = None,
                start_in: timedelta = timedelta(0), length: timedelta = timedelta(hours=2)) -> FlashSale:
    now = app.clock.now()
    return await FlashDesk(app.shop.uow, app.clock.now).create(
        SaleSpec(SKU, price, units, per_buyer, now + start_in, now + start_in + length, stars), "test")


async def _sold(app: Any, sale_id: int) -> int:
    async with app.db.uow() as uow:
        sale = await uow.flash_sales.get(sale_id)
    assert sale is not None
    return sale.sold


async def _refusal(coro: Any) -> StoreError:
    with pytest.raises(StoreError) as info:
        await coro
    return info.value


async def test_given_a_50_unit_sale_when_320_reserves_race_through_two_stores_then_exactly_50_are_at_its_price(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        apps = [(await stack.enter_async_context(open_shop(db_url, tmp_path, clock=clock, max_batch=mb)))[0]
                for mb in (256, 16)]
        await import_n(apps[0], 400)
        sale = await _sale(apps[0], units=50)
        pid = await product_id(apps[0])
        gate = asyncio.Event()

        async def shopper(i: int) -> Order | StoreError:  # 160 buyers, each trying twice, through both stores
            await gate.wait()
            try:
                return await apps[i % 2].shop.reserve(buyer(i // 2), pid, 1, "en", promo=FLASH)
            except StoreError as exc:
                return exc

        tasks = [asyncio.create_task(shopper(i)) for i in range(320)]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*tasks)
        made = [o for o in outcomes if isinstance(o, Order)]
        refused = [o for o in outcomes if isinstance(o, StoreError)]
        assert len(made) == 50 and all(o.amount == 500 and o.promo["flash"]["sale"] == sale.id for o in made)
        assert len({o.buyer for o in made}) == 50  # nobody over their limit of one
        assert {e.code for e in refused} <= {ErrorCode.FLASH_SOLD_OUT, ErrorCode.FLASH_LIMIT}
        assert await stock_of(apps[0]) == (350, 50, 0)  # a refusal holds nothing
        assert await _sold(apps[0], sale.id) == 50

        # Sold out: a buyer who did not ask for the flash price gets the ordinary one, and the page says why.
        late = await apps[1].shop.reserve(buyer("late"), pid, 1, "en")
        assert (late.amount, late.promo) == (1000, {})
        p = await apps[0].shop.product(pid)
        assert p is not None
        quote = await apps[0].shop.quote(buyer("other"), p, 1)
        assert quote.amount == 1000 and quote.available == 0 and [n.key for n in quote.notes] == [SOLD_OUT]

        # Paid ones stay sold; lapsed holds give their units back to the sale.
        for o in made[:10]:
            assert (await pay(apps[0], o)).outcome == "delivered"
        clock.advance(minutes=16)
        for app in apps:
            await app.shop.expire_holds()
        assert await _sold(apps[0], sale.id) == 10
        again = await apps[0].shop.reserve(made[20].buyer, pid, 1, "en", promo=FLASH)
        assert again.amount == 500 and await _sold(apps[0], sale.id) == 11

        # A refund gives its unit back too.
        await AdminFlow(apps[0].shop, Translator()).service.refund(BOSS, made[0].id)
        await settle(*apps)
        assert await order_status(apps[0], made[0].id) == "refunded" and await _sold(apps[0], sale.id) == 10


async def test_the_window_edges_before_at_the_start_at_the_end_and_a_hold_made_before_it_closed(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 10)
        sale = await _sale(app, units=5, per_buyer=2, price=600, stars=40, start_in=timedelta(hours=1),
                           length=timedelta(hours=2))
        pid = await product_id(app)
        p = await app.shop.product(pid)
        assert p is not None

        # Before the start: the ordinary price; the page shows the flash price, the start and a countdown.
        quote = await app.shop.quote(buyer(1), p, 1)
        assert quote.amount == 1000 and quote.available is None
        [note] = quote.notes
        assert note.key == UPCOMING and note.params["countdown"] == "01:00:00" and note.params["price"] == 600
        assert note.params["at"] == "2026-01-01 01:00 UTC"
        early = await _refusal(app.shop.reserve(buyer(1), pid, 1, "en", promo=FLASH))
        assert early.code is ErrorCode.FLASH_NOT_STARTED and await stock_of(app) == (10, 0, 0)
        plain = await app.shop.reserve(buyer(2), pid, 1, "en")
        assert plain.amount == 1000 and not plain.promo

        clock.advance(hours=1)  # the start: the flash price, its own Stars price, "N left" and the time left
        quote = await app.shop.quote(buyer(1), p, 2)
        assert (quote.amount, quote.stars, quote.available) == (1200, 80, 5)
        assert [n.key for n in quote.notes] == [LIVE] and quote.notes[0].params["countdown"] == "02:00:00"
        held = await app.shop.reserve(buyer(1), pid, 2, "en", promo=FLASH)
        assert (held.amount, held.price_in("XTR")) == (1200, 80)
        # The limit: over it, the ordinary price, or a clear refusal for a buyer asking for the flash price.
        assert [n.key for n in (await app.shop.quote(buyer(1), p, 1)).notes] == [LIMIT]
        refused = await _refusal(app.shop.reserve(buyer(1), pid, 1, "en", promo=FLASH))
        assert refused.code is ErrorCode.FLASH_LIMIT and refused.params["limit"] == 2
        assert (await app.shop.reserve(buyer(1), pid, 1, "en")).amount == 1000

        clock.advance(hours=2)  # the end: the ordinary price again, for everyone
        assert (await app.shop.quote(buyer(3), p, 1)).notes == ()
        after = await _refusal(app.shop.reserve(buyer(3), pid, 1, "en", promo=FLASH))
        assert after.code is ErrorCode.FLASH_ENDED
        assert (await app.shop.reserve(buyer(3), pid, 1, "en")).amount == 1000
        # ... but the units held before it closed still pay the flash price until their hold lapses.
        paid = await app.shop.pay(notice_for(held, "tx-late-stars", amount=80, currency="XTR"))
        assert paid.outcome == "delivered" and await _sold(app, sale.id) == 2


async def test_a_late_payment_of_a_lapsed_flash_order_takes_its_unit_again_even_past_the_cap(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 5)
        sale = await _sale(app, units=1)
        pid = await product_id(app)
        first = await app.shop.reserve(buyer(1), pid, 1, "en", promo=FLASH)
        clock.advance(minutes=16)
        await app.shop.expire_holds()
        assert await _sold(app, sale.id) == 0
        second = await app.shop.reserve(buyer(2), pid, 1, "en", promo=FLASH)  # the unit went to someone else
        assert second.amount == 500 and await _sold(app, sale.id) == 1
        late = await app.shop.pay(notice_for(first, "tx-late", amount=500))  # the buyer paid the price shown
        assert late.outcome == "delivered" and await _sold(app, sale.id) == 2
        again = await app.shop.pay(notice_for(first, "tx-late"))  # the same notice again: counted once
        assert again.outcome == "duplicate" and await _sold(app, sale.id) == 2


async def test_linked_accounts_are_one_buyer_for_the_limit(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 5)
        await _sale(app, units=5, per_buyer=1)
        pid = await product_id(app)
        tg, wx = Buyer("telegram", "100"), Buyer("wechat", "o-wx")
        issued = await app.shop.links.issue(wx)
        await app.shop.links.redeem(tg, shown(issued.code))
        assert (await app.shop.reserve(wx, pid, 1, "en", promo=FLASH)).amount == 500
        refused = await _refusal(app.shop.reserve(tg, pid, 1, "en", promo=FLASH))
        assert refused.code is ErrorCode.FLASH_LIMIT and refused.params["have"] == 1
        assert (await app.shop.reserve(buyer("stranger"), pid, 1, "en", promo=FLASH)).amount == 500


async def test_a_cancelled_flash_order_gives_its_unit_back(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 3)
        sale = await _sale(app, units=1)
        pid = await product_id(app)
        order = await app.shop.reserve(buyer(1), pid, 1, "en", promo=FLASH)
        sold_out = await _refusal(app.shop.reserve(buyer(2), pid, 1, "en", promo=FLASH))
        assert sold_out.code is ErrorCode.FLASH_SOLD_OUT and await stock_of(app) == (2, 1, 0)
        await app.shop.cancel(order.id, buyer(1))
        assert await _sold(app, sale.id) == 0
        assert (await app.shop.reserve(buyer(2), pid, 1, "en", promo=FLASH)).amount == 500


def _admin(app: Any) -> tuple[AdminFlow, AdminCtx]:
    return AdminFlow(app.shop, Translator()), AdminCtx(BOSS, "en")


async def test_the_merchant_makes_lists_and_ends_a_sale_in_the_chat_and_each_step_is_audited(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 5)
        flow, ctx = _admin(app)
        [made] = await flow.on_command(ctx, f"/flash {SKU} 500 3 1 2026-01-01T00:30:00+00:00 +2h")
        assert made.error is None and "3 units, 1 per buyer" in made.body and "35 Stars" in made.body
        [listed] = await flow.on_command(ctx, "/flash")
        assert f"#1 {SKU}" in listed.body and "0/3 sold" in listed.body and "upcoming" in listed.body
        [overlap] = await flow.on_command(ctx, f"/flash {SKU} 400 3 1 now +1h")
        assert overlap.error == "overlap" and "/flash_end 1" in overlap.title
        for bad, error in (("/flash NOPE 500 3 1 now +1h", "unknown_sku"),
                           (f"/flash {SKU} 500 3 5 now +1h", "bad_numbers"),
                           (f"/flash {SKU} 500 3 1 2025-01-01T00:00 2025-01-02T00:00", "bad_window"),
                           (f"/flash {SKU} five 3 1 now +1h", "usage"),
                           ("/flash_end 99", "not_found")):
            [screen] = await flow.on_command(ctx, bad)
            assert screen.error == error, bad
        clock.advance(hours=1)
        pid = await product_id(app)
        assert (await app.shop.reserve(buyer(1), pid, 1, "en")).amount == 500
        [ended] = await flow.on_command(ctx, "/flash_end 1")
        assert "ended" in ended.title
        assert (await app.shop.reserve(buyer(2), pid, 1, "en")).amount == 1000
        async with app.db.uow() as uow:
            entries = await uow.audit.latest("admin", BOSS.key, limit=50)
        refusals = sorted(e.detail.get("refused", "") for e in entries if e.detail.get("command") == "flash")
        assert refusals == ["", "", "bad_numbers", "bad_window", "overlap", "unknown_sku", "usage"]
        assert [e.detail.get("refused") for e in entries if e.detail.get("command") == "flash_end"] == [None,
                                                                                                       "not_found"]


async def test_config_sales_are_made_at_start_changed_with_the_config_and_a_bad_one_stops_the_start(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    line = {"sku": SKU, "price": 300, "units": 7, "per_buyer": 2, "starts": "2026-01-01T00:00:00+00:00",
            "ends": "2026-01-02T00:00:00+08:00"}
    settings = make_settings(db_url, tmp_path)
    settings.marketing.flash_sales = type(settings.marketing.flash_sales).model_validate({"sales": [line]})
    app = await App.open(settings, clock=clock)
    try:
        await import_n(app, 3)
        pid = await product_id(app)
        assert (await app.shop.reserve(buyer(1), pid, 1, "en")).amount == 300
    finally:
        await app.close()
    settings.marketing.flash_sales = type(settings.marketing.flash_sales).model_validate(
        {"sales": [line | {"price": 200}]})
    app = await App.open(settings, clock=clock)
    try:
        async with app.db.uow() as uow:
            [sale] = await uow.flash_sales.by_source("config:")
        assert (sale.price, sale.units, sale.sold) == (200, 7, 1)  # changed; what was taken is kept
    finally:
        await app.close()
    settings.marketing.flash_sales = type(settings.marketing.flash_sales).model_validate(
        {"sales": [line | {"sku": "NOPE", "starts": "2026-01-01T00:10:00+00:00"}]})
    with pytest.raises(ConfigError, match="unknown_sku"):
        await App.open(settings, clock=clock)
