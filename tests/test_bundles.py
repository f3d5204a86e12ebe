"""Bundles: one product that delivers the codes of several pool products together, all or none. Held in one
reserve transaction (every part's codes, or SOLD_OUT naming the part that is short), sold by the payment, delivered
in one message grouped by part, given back whole when the hold lapses or is cancelled, burned whole on refund.
The store on SQLite and PostgreSQL; the delivery on Telegram through the fake Bot API (both libraries)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.settings import ConfigError
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.supply import import_codes
from tests.fake_bot_api import FakeBotAPI
from tests.helpers import buyer, import_n, make_settings, open_shop, pay, product_id, settle, stock_of
from tests.telegram_harness import Shopfront
from tests.test_admin_flow import flow_for, run
from tests.test_telegram_storefront import buy as tg_buy

CATALOG = [
    {"sku": "GAME", "title": "Game key", "price": 3000, "stars": 200, "kind": "code", "max_qty": 5},
    {"sku": "VIP", "title": "VIP month", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
    {"sku": "PACK", "title": "Starter pack", "price": 4500, "stars": 300, "kind": "bundle", "max_qty": 3,
     "bundle": [{"sku": "GAME", "qty": 1}, {"sku": "VIP", "qty": 2}]},
]


async def _stocked(app, game: int, vip: int) -> int:  # noqa: ANN001
    """Codes in both parts' pools; returns the bundle's product id."""
    await import_n(app, game, "GAME", prefix="G")
    await import_n(app, vip, "VIP", prefix="V")
    return await product_id(app, "PACK")


async def _stock(app) -> dict[str, tuple[int, int, int]]:  # noqa: ANN001
    return {sku: await stock_of(app, sku) for sku in ("GAME", "VIP")}


async def test_given_a_bundle_when_paid_then_every_part_is_delivered_in_one_message_grouped_by_part(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, notifier, _):
        game = await import_n(app, 3, "GAME", prefix="G")
        vip = await import_n(app, 6, "VIP", prefix="V")
        view = await app.shop.product_view(await product_id(app, "PACK"))
        assert view.available == 3  # min(3 game keys / 1, 6 VIP codes / 2)
        order = await app.shop.reserve(buyer(1), await product_id(app, "PACK"), 1, "en", "chat-1")
        assert await _stock(app) == {"GAME": (2, 1, 0), "VIP": (4, 2, 0)}
        await pay(app, order)
        await settle(app)
        [delivery] = notifier.delivered_to("chat-1")
        assert len(delivery.codes) == 3
        assert delivery.codes[0] in game and set(delivery.codes[1:]) <= set(vip)
        assert await _stock(app) == {"GAME": (2, 0, 1), "VIP": (4, 0, 2)}


async def test_given_one_part_short_when_a_bundle_is_held_then_it_is_sold_out_naming_that_part_and_nothing_is_held(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2, "GAME", prefix="G")
        await import_n(app, 1, "VIP", prefix="V")  # a bundle needs two
        assert (await app.shop.product_view(await product_id(app, "PACK"))).available == 0
        with pytest.raises(StoreError) as refused:
            await app.shop.reserve(buyer(1), await product_id(app, "PACK"), 1, "en", "chat-1")
        assert refused.value.code is ErrorCode.SOLD_OUT and refused.value.params["sku"] == "VIP"
        assert await _stock(app) == {"GAME": (2, 0, 0), "VIP": (1, 0, 0)}


async def test_given_buyers_of_a_bundle_and_of_its_parts_racing_then_no_bundle_is_ever_half_held(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG, store={"max_open_holds": 10}) as (app, _, _), \
            open_shop(db_url, tmp_path, catalog=CATALOG, store={"max_open_holds": 10}) as (app2, _, _):
        await import_n(app, 5, "GAME", prefix="G")
        await import_n(app, 7, "VIP", prefix="V")
        pack, game, vip = [await product_id(app, s) for s in ("PACK", "GAME", "VIP")]

        async def hold(shop, n: int, pid: int):  # noqa: ANN001, ANN202
            try:
                return await shop.reserve(buyer(n), pid, 1, "en", f"chat-{n}")
            except StoreError as exc:
                assert exc.code is ErrorCode.SOLD_OUT
                return None

        wants = [pack, game, vip] * 6
        made = await asyncio.gather(*(hold((app, app2)[n % 2].shop, n, pid) for n, pid in enumerate(wants)))
        packs = [o for o in made if o is not None and o.product_id == pack]
        async with app.db.uow() as uow:
            held = await uow.codes.for_orders([o.id for o in packs])
        for o in packs:  # every bundle held has one game key and two VIP codes: never a half
            assert sorted(c.product_id for c in held[o.id]) == sorted([game, vip, vip])
        singles = [o for o in made if o is not None and o.product_id != pack]
        used_game = len(packs) + sum(1 for o in singles if o.product_id == game)
        used_vip = 2 * len(packs) + sum(1 for o in singles if o.product_id == vip)
        assert used_game <= 5 and used_vip <= 7
        assert (await stock_of(app, "GAME"))[1] == used_game and (await stock_of(app, "VIP"))[1] == used_vip


async def test_given_a_held_bundle_when_the_hold_lapses_or_is_cancelled_then_every_part_goes_back(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, catalog=CATALOG, clock=clock) as (app, _, _):
        pack = await _stocked(app, 2, 4)
        first = await app.shop.reserve(buyer(1), pack, 1, "en", "chat-1")
        second = await app.shop.reserve(buyer(2), pack, 1, "en", "chat-2")
        assert await _stock(app) == {"GAME": (0, 2, 0), "VIP": (0, 4, 0)}
        await app.shop.cancel(second.id, buyer(2))
        assert await _stock(app) == {"GAME": (1, 1, 0), "VIP": (2, 2, 0)}
        clock.advance(hours=1)
        assert [o.id for o in await app.shop.expire_holds()] == [first.id]
        assert await _stock(app) == {"GAME": (2, 0, 0), "VIP": (4, 0, 0)}


async def test_given_a_lapsed_bundle_paid_late_when_a_part_is_gone_then_it_is_refunded_not_half_delivered(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, catalog=CATALOG, clock=clock) as (app, notifier, gateway):
        order = await app.shop.reserve(buyer(1), await _stocked(app, 2, 2), 1, "en", "chat-1")
        clock.advance(hours=1)
        await app.shop.expire_holds()
        vip = await app.shop.reserve(buyer(2), await product_id(app, "VIP"), 1, "en", "chat-2")  # a part goes
        assert vip is not None
        await pay(app, order)
        await settle(app)
        assert notifier.delivered_to("chat-1") == []
        assert [reason for _, reason in gateway.refunds] == ["stock_gone"]
        assert await _stock(app) == {"GAME": (2, 0, 0), "VIP": (1, 1, 0)}


async def test_given_a_delivered_bundle_when_refunded_by_the_merchant_then_every_part_is_burned(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 1, "GAME", prefix="G")
        await import_n(app, 2, "VIP", prefix="V")
        order = await app.shop.reserve(buyer(1), await product_id(app, "PACK"), 1, "en", "chat-1")
        await pay(app, order)
        await settle(app)
        screen = await run(flow_for(app), f"/refund {order.id}")
        assert screen.error is None and "3 code(s)" in screen.body
        lines = {line.sku: line for line in await app.shop.stock()}
        assert (lines["GAME"].burned, lines["VIP"].burned) == (1, 2)


@pytest.mark.parametrize(("part", "problem"), [
    ({"sku": "NOPE", "qty": 1}, "no product 'NOPE'"),
    ({"sku": "SUB", "qty": 1}, "'SUB' is a reusable product"),
])
def test_given_a_bundle_with_a_part_that_is_not_a_pool_product_then_the_config_is_refused(
        tmp_path: Path, part: dict, problem: str) -> None:
    catalog = [*CATALOG[:2], {"sku": "SUB", "title": "Shared", "price": 10, "kind": "reusable"},
               {"sku": "BAD", "title": "Bad", "price": 10, "kind": "bundle", "bundle": [part]}]
    with pytest.raises(ConfigError) as refused:
        make_settings("sqlite+aiosqlite:///:memory:", tmp_path, catalog=catalog)
    assert problem in str(refused.value)


# -- Telegram ---------------------------------------------------------------------------------------------------

async def test_given_a_bundle_bought_on_telegram_then_one_message_carries_every_part_named(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    extra = {"catalog": [{"sku": "VIP", "title": "VIP month", "price": 1000, "stars": 70},
                         {"sku": "PACK", "title": "Starter pack", "price": 2500, "stars": 120, "kind": "bundle",
                          "bundle": [{"sku": "GAME", "qty": 1}, {"sku": "VIP", "qty": 2}]}]}
    async with Shopfront(api, tmp_path, library=library, extra=extra) as shop:
        game = await shop.stock(1)
        vip = [f"VIP-{i}" for i in range(2)]
        await import_codes(shop.app.db.uow, shop.app.vault, shop.app.clock, "VIP", [(c + "\n").encode() for c in vip])
        ann = api.user(601, "Ann")
        mark = api.mark()
        await shop.send(api.message_update(ann, "/start"))
        await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 601, since=mark)
        mark = api.mark()
        pack = await product_id(shop.app, "PACK")
        await shop.send(api.callback_update(ann, f"product:{pack}", api.last_message(601)))
        page = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 601, since=mark)
        assert "Starter pack" in page.params["text"] and "Only 1 left" in page.params["text"]
        invoice, _ = await tg_buy(shop, ann, page)
        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, invoice["payload"], 120))
        await shop.send(api.successful_payment_update(ann, invoice["payload"], 120, "charge-pack"))
        delivery = await api.wait_for("sendMessage", lambda c: "tg-spoiler" in c.params["text"], since=mark)
        text = delivery.params["text"]
        assert all(f"<code>{c}</code>" in text for c in game + vip)
        assert "Game card: code 1" in text and "VIP month × 2: codes 2–3" in text
        assert text.index(game[0]) < text.index(vip[0])  # grouped by part, in the order the body names them
