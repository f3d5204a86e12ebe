"""Member levels, points and the points mall (core/members/): levels follow spend up and down, the level's discount
is in the order, points are earned, expire and are taken back, the mall's products are bought with points only and
delivered through the points payment, and the same points cannot be spent twice at once."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.admin import Merchant
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.members import buy_with_points
from core.models import Buyer
from core.payments import PaymentNotice
from handlers.admin import AdminFlow
from locales import Translator
from tests.helpers import SKU, buyer, import_n, open_shop, order_status, pay, payments_for, product_id, settle, stock_of

MALL = "MALL-5"
CATALOG: list[dict[str, Any]] = [
    {"sku": SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
    {"sku": MALL, "title": "Mall card", "price": 500, "stars": 35, "kind": "code", "max_qty": 5},
]
MEMBERS: dict[str, Any] = {"members": {
    "levels": [{"level": 1, "name": {"en": "Silver", "zh_CN": "白银会员"}, "min_spend": 1500, "discount_percent": 5},
               {"level": 2, "name": {"en": "Gold", "zh_CN": "黄金会员"}, "min_spend": 3000, "discount_percent": 10,
                "perks": {"en": "priority support", "zh_CN": "优先客服"}}],
    "points_per_unit": 10, "points_days": 30, "mall": [{"sku": MALL, "points": 50}]}}
ALICE, BOB = buyer("alice"), buyer("bob")


def shop_with_members(db_url: str, tmp_path: Path, **kw: Any) -> Any:
    return open_shop(db_url, tmp_path, catalog=CATALOG, marketing=MEMBERS, **kw)


async def refund(app: Any, order_id: str) -> None:
    await AdminFlow(app.shop, Translator()).service.refund(Merchant("test", "boss"), order_id)
    await settle(app)


async def level_of(app: Any, who: Any) -> int:
    async with app.db.uow() as uow:
        return (await uow.members.levels([who])).get(who.key, 0)


async def buy(app: Any, who: Any, qty: int = 1, **kw: Any) -> Any:
    try:
        order = await app.shop.reserve(who, await product_id(app), qty, "en")
    except StoreError as exc:  # a refund makes the risk check ask once: the buyer answers it
        assert exc.code is ErrorCode.CHALLENGE_REQUIRED
        a, b = exc.params["question"].split(" + ")
        assert await app.shop.pass_challenge(who, exc.params["token"], str(int(a) + int(b)))
        order = await app.shop.reserve(who, await product_id(app), qty, "en")
    assert (await pay(app, order, **kw)).outcome == "delivered"
    return order


async def test_levels_rise_with_spend_give_their_discount_and_fall_on_refund(db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, _, _):
        await import_n(app, 10)
        await buy(app, ALICE, 2)  # 2000 spent: Silver
        assert await level_of(app, ALICE) == 1
        product = await app.shop.product(await product_id(app))
        assert product is not None
        quote = await app.shop.quote(ALICE, product, 1)
        assert (quote.amount, [n.key for n in quote.notes]) == (950, ["members.level_price"])
        second = await buy(app, ALICE)
        assert (second.amount, second.discount, second.promo) == (950, 50, {"level": {"level": 1, "percent": 5}})
        third = await buy(app, ALICE)  # 2000 + 950 + 950 = 3900: Gold
        assert await level_of(app, ALICE) == 2
        assert (await app.shop.reserve(ALICE, await product_id(app), 1, "en")).amount == 900
        assert (await app.shop.reserve(BOB, await product_id(app), 1, "en")).amount == 1000  # no level: list price

        await refund(app, third.id)  # 2950 left: back to Silver
        assert await level_of(app, ALICE) == 1
        profile = await app.shop.members.profile(ALICE)
        assert profile.spend == 2950 and profile.level is not None and profile.level.level == 1
        assert profile.next_level is not None and profile.to_next == 50


async def test_a_level_a_merchant_granted_above_the_spend_stays_after_a_refund(db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, _, _):
        await import_n(app, 3)
        await app.shop.risk.set_level(ALICE, 2)
        order = await buy(app, ALICE)
        assert order.amount == 900
        await refund(app, order.id)
        assert await level_of(app, ALICE) == 2


async def test_points_are_earned_expire_and_are_taken_back_on_refund(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with shop_with_members(db_url, tmp_path, clock=clock) as (app, _, _):
        members = app.shop.members
        await import_n(app, 10)
        first = await buy(app, ALICE)  # 1000 = 10 units: 100 points
        assert await members.points(ALICE) == 100
        stars = await buy(app, BOB, amount=70, currency="XTR")  # a Stars order earns by its store price
        assert stars.id and await members.points(BOB) == 100
        profile = await members.profile(ALICE)
        assert profile.expiry is not None and profile.expiry.points == 100
        assert profile.expiry.at == clock.now() + timedelta(days=30)
        assert [(e.kind, e.delta) for e in profile.history] == [("earn", 100)]

        clock.advance(days=31)
        assert await members.points(ALICE) == 0  # expired
        second = await buy(app, ALICE, 2)  # 2000 paid (no level yet at 1000 spent): 200 points
        assert second.amount == 2000 and await members.points(ALICE) == 200
        await refund(app, second.id)
        assert await members.points(ALICE) == 0
        history = (await members.profile(ALICE)).history
        assert [(e.kind, e.order_id) for e in history] == [("reverse", second.id), ("earn", second.id),
                                                           ("earn", first.id)]


async def test_refunding_points_already_spent_leaves_a_debt_the_next_points_pay(db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, notifier, _):
        members = app.shop.members
        await import_n(app, 5)
        await import_n(app, 3, sku=MALL, prefix="MALL")
        earned = await buy(app, ALICE)  # 100 points
        result = await buy_with_points(app.shop, ALICE, await product_id(app, MALL), 1, "en")
        assert result.outcome == "delivered" and await members.points(ALICE) == 50
        await refund(app, earned.id)  # the 100 earned are taken back; 50 were spent
        assert await members.points(ALICE) == -50
        await buy(app, ALICE)  # 100 more: the debt is paid first
        assert await members.points(ALICE) == 50


async def test_a_mall_product_is_bought_with_points_and_delivered_through_the_points_payment(
        db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, notifier, _):
        members = app.shop.members
        await import_n(app, 5)
        codes = await import_n(app, 3, sku=MALL, prefix="MALL")
        mall_id = await product_id(app, MALL)
        await buy(app, ALICE)  # 100 points
        result = await buy_with_points(app.shop, ALICE, mall_id, 2, "en")  # 2 x 50 points
        assert result.outcome == "delivered" and result.order is not None
        order = result.order
        assert (order.amount, order.discount, order.promo) == (0, 1000, {"points": {"points": 100}})
        await settle(app)
        delivered = notifier.delivered_to(ALICE.external_id)[-1]
        assert delivered.order.id == order.id and len(delivered.codes) == 2 and set(delivered.codes) <= set(codes)
        assert [(p.provider, p.amount) for p in await payments_for(app, order.id)] == [("points", 0)]
        assert await members.points(ALICE) == 0
        assert await stock_of(app, MALL) == (1, 0, 2)

        await refund(app, order.id)  # the points come back with the refund
        assert await order_status(app, order.id) == "refunded" and await members.points(ALICE) == 100


async def test_points_below_the_price_and_products_not_in_the_mall_are_refused_holding_nothing(
        db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await import_n(app, 3, sku=MALL, prefix="MALL")
        with pytest.raises(StoreError) as short:
            await buy_with_points(app.shop, BOB, await product_id(app, MALL), 1, "en")
        assert short.value.code is ErrorCode.POINTS_SHORT and short.value.params == {"needed": 50, "balance": 0}
        await buy(app, ALICE)  # 100 points
        with pytest.raises(StoreError) as foreign:
            await buy_with_points(app.shop, ALICE, await product_id(app), 1, "en")
        assert foreign.value.code is ErrorCode.NOT_IN_MALL
        with pytest.raises(StoreError) as three:
            await buy_with_points(app.shop, ALICE, await product_id(app, MALL), 3, "en")  # 150 > 100
        assert three.value.params == {"needed": 150, "balance": 100}
        assert await stock_of(app, MALL) == (3, 0, 0) and await members.points(ALICE) == 100


async def test_a_lapsed_mall_order_gives_the_points_back_and_a_late_payment_takes_them_again(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with shop_with_members(db_url, tmp_path, clock=clock) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await import_n(app, 3, sku=MALL, prefix="MALL")
        await buy(app, ALICE)
        held = await app.shop.reserve(ALICE, await product_id(app, MALL), 1, "en", promo={"points": "1"})
        assert held.amount == 0 and await members.points(ALICE) == 50
        clock.advance(hours=1)
        await app.shop.expire_holds()
        assert await members.points(ALICE) == 100
        # Paid late all the same (its payment was on its way): delivered, and the points are taken again.
        late = await app.shop.pay(PaymentNotice(held.id, "points", f"points:{held.id}", 0, held.currency, ALICE))
        assert late.outcome == "delivered" and await members.points(ALICE) == 50


async def test_the_same_points_spent_twice_at_once_pass_once(db_url: str, tmp_path: Path) -> None:
    async with shop_with_members(db_url, tmp_path) as (app, _, _), \
            shop_with_members(db_url, tmp_path) as (app2, _, _):
        await import_n(app, 5)
        await import_n(app, 6, sku=MALL, prefix="MALL")
        await buy(app, ALICE)  # 100 points: two mall cards of 50 each, not three
        mall_id = await product_id(app, MALL)
        tries = [buy_with_points(a.shop, ALICE, mall_id, 1, "en") for a in (app, app2, app, app2)]
        results = await asyncio.gather(*tries, return_exceptions=True)
        done = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(done) == 2 and len(refused) == 2, results
        assert all(r.code is ErrorCode.POINTS_SHORT for r in refused)
        assert await app.shop.members.points(ALICE) == 0
        assert await stock_of(app, MALL) == (4, 0, 2)


async def reserved(app: Any, who: Any, sku: str = SKU) -> Any:
    """An order held for `who` (answering the risk check's question when a refund made it ask)."""
    try:
        return await app.shop.reserve(who, await product_id(app, sku), 1, "en")
    except StoreError as exc:
        assert exc.code is ErrorCode.CHALLENGE_REQUIRED
        a, b = exc.params["question"].split(" + ")
        assert await app.shop.pass_challenge(who, exc.params["token"], str(int(a) + int(b)))
        return await app.shop.reserve(who, await product_id(app, sku), 1, "en")


async def test_payments_landing_together_count_each_person_once_and_pay_a_debt_first(
        db_url: str, tmp_path: Path) -> None:
    marketing = {"members": {**MEMBERS["members"], "gift_points": 20, "gift_on": "purchase"}}
    async with open_shop(db_url, tmp_path, catalog=CATALOG, marketing=marketing) as (app, _, _):
        members = app.shop.members
        await import_n(app, 10)
        await import_n(app, 3, sku=MALL, prefix="MALL")
        earned = await buy(app, ALICE)  # 100 points and the gift's 20
        assert (await buy_with_points(app.shop, ALICE, await product_id(app, MALL), 1, "en")).outcome == "delivered"
        await refund(app, earned.id)  # the 120 are taken back; 50 were spent
        assert await members.points(ALICE) == -50
        alt, carol, carol2 = Buyer("wechat", "o-alice"), buyer("carol"), Buyer("wechat", "o-carol")
        async with app.db.uow(write=True) as uow:
            await uow.risk.set_links([ALICE, alt], "P-alice", "L-alice", app.clock.now())
            await uow.risk.set_links([carol, carol2], "P-carol", "L-carol", app.clock.now())
            await uow.commit()
        orders = [await reserved(app, who) for who in (ALICE, alt, BOB, carol, carol2)]
        results = await asyncio.gather(*(pay(app, o) for o in orders))  # one payment batch
        assert [r.outcome for r in results] == ["delivered"] * 5
        await settle(app)
        assert await members.points(alt) == -50 + 100 + 100  # the debt paid first; no gift: Alice bought before
        assert await members.points(BOB) == 100 + 20  # a first order: the gift
        assert await members.points(carol2) == 100 + 100 + 20  # one person, two accounts: one gift
        assert (await level_of(app, ALICE), await level_of(app, alt)) == (1, 1)  # 1000 + 1000 (refund left out)
        assert (await level_of(app, BOB), await level_of(app, carol)) == (0, 1)  # 1000; 2000 together
