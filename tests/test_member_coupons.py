"""Coupons as member rewards (core/members/coupons.py): a coupon of the points mall bought with points becomes one new
code in the buyer's My coupons, usable once on an order; the same points cannot buy twice at once (SQLite and
PostgreSQL, two store processes); a referral and the new-buyer gift give a coupon once per person; a refund takes an
unused one back (voided) and leaves a used one used; codes are never stored in plain text."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import ConfigError
from core.coupons import PERCENT, Terms
from core.errors import ErrorCode, StoreError
from core.members import points as ledger
from core.models import Buyer
from handlers.customer import Ctx
from storage import tables as t
from tests.helpers import buyer, import_n, make_settings, open_shop, pay, product_id, settle
from tests.test_members import buy
from tests.test_referrals import flow_of, invited, link_of, refund, start

ALICE, BOB = buyer("alice"), buyer("bob")
MALL: dict[str, Any] = {"members": {"mall": [{"reward": "coupon", "coupon": "mallten", "points": 50}]}}


async def campaign(app: Any, name: str = "MALLTEN", percent: int = 10) -> None:
    """A single-use campaign; its one generated code stays with the merchant (tests use only issued ones)."""
    await app.shop.coupons.generate(name, 1, Terms(PERCENT, percent, "CNY"))


async def give_points(app: Any, who: Buyer, points: int) -> None:
    now = app.clock.now()
    async with app.db.uow(write=True) as uow:
        await ledger.credit(uow, who, points, ledger.EARN, f"test:{who.key}:{points}", now, now + timedelta(days=9))
        await uow.commit()


async def plain_dump(app: Any) -> str:
    async with app.db.read_engine.connect() as conn:
        rows = [list(await conn.execute(select(table))) for table in (
            t.coupons, t.coupon_codes, t.coupon_uses, t.member_coupons, t.orders, t.audit, t.points_ledger,
            t.outbox)]
    return str(rows)


async def test_a_mall_coupon_bought_with_points_is_in_my_coupons_and_takes_its_share_once(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MALL) as (app, _, _):
        members = app.shop.members
        await import_n(app, 3)
        await campaign(app)
        await give_points(app, ALICE, 120)
        bought = await members.buy_coupon(ALICE, "MALLTEN")
        assert bought.code and bought.coupon.name == "MALLTEN" and not bought.used
        assert await members.points(ALICE) == 70
        listed = await members.my_coupons(ALICE)
        assert [(c.code, c.source, c.used, c.voided) for c in listed] == [(bought.code, "mall", False, False)]

        order = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": bought.code})
        assert (order.amount, order.discount) == (900, 100)
        assert (await pay(app, order)).outcome == "delivered"
        assert [c.used for c in await members.my_coupons(ALICE)] == [True]
        with pytest.raises(StoreError) as again:  # single use: a second order is refused
            await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": bought.code})
        assert again.value.code is ErrorCode.COUPON_EXHAUSTED

        assert bought.code not in await plain_dump(app)  # sealed and fingerprinted, never plain
        async with app.db.uow() as uow:
            reveals = await uow.audit.counts("coupon_reveal", [ALICE.key], since=app.clock.now() - timedelta(hours=1))
        assert reveals == {ALICE.key: 3}  # the purchase and each listing showed the code


async def test_a_mall_coupon_is_refused_with_nothing_taken_when_points_are_short_or_the_campaign_is_off(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MALL) as (app, _, _):
        members = app.shop.members
        await give_points(app, ALICE, 60)
        with pytest.raises(StoreError) as missing:  # the campaign was never made
            await members.buy_coupon(ALICE, "MALLTEN")
        assert missing.value.code is ErrorCode.COUPON_REWARD_UNAVAILABLE
        await campaign(app)
        await app.shop.coupons.set_active("MALLTEN", False)
        with pytest.raises(StoreError) as off:
            await members.buy_coupon(ALICE, "MALLTEN")
        assert off.value.code is ErrorCode.COUPON_REWARD_UNAVAILABLE
        assert await members.mall_coupons() == []  # not offered while off
        await app.shop.coupons.set_active("MALLTEN", True)
        with pytest.raises(StoreError) as other:
            await members.buy_coupon(ALICE, "SOMETHINGELSE")
        assert other.value.code is ErrorCode.NOT_IN_MALL
        await members.buy_coupon(ALICE, "MALLTEN")
        with pytest.raises(StoreError) as short:
            await members.buy_coupon(ALICE, "MALLTEN")
        assert (short.value.code, short.value.params) == (ErrorCode.POINTS_SHORT, {"needed": 50, "balance": 10})
        assert await members.points(ALICE) == 10 and len(await members.my_coupons(ALICE)) == 1


async def test_the_same_points_buy_a_mall_coupon_once_when_two_processes_race(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MALL) as (app, _, _), \
            open_shop(db_url, tmp_path, marketing=MALL) as (app2, _, _):
        await campaign(app)
        await give_points(app, ALICE, 100)  # two coupons of 50, not four
        tries = [a.shop.members.buy_coupon(ALICE, "MALLTEN") for a in (app, app2, app, app2)]
        results = await asyncio.gather(*tries, return_exceptions=True)
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(refused) == 2 and all(r.code is ErrorCode.POINTS_SHORT for r in refused), results
        assert await app.shop.members.points(ALICE) == 0
        assert len(await app.shop.members.my_coupons(ALICE)) == 2


async def test_refunding_a_mall_coupon_gives_the_points_back_and_voids_it_unless_used(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MALL) as (app, _, _):
        members = app.shop.members
        await import_n(app, 3)
        await campaign(app)
        await give_points(app, ALICE, 100)
        kept = await members.buy_coupon(ALICE, "MALLTEN")
        spent = await members.buy_coupon(ALICE, "MALLTEN")
        order = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": spent.code})
        assert (await pay(app, order)).outcome == "delivered"

        assert await members.refund_mall_coupon(kept.id) == (50, True)
        assert await members.refund_mall_coupon(spent.id) == (50, False)  # used: the points back, the code stays used
        assert await members.refund_mall_coupon(kept.id) == (0, False)  # once
        assert await members.points(ALICE) == 100
        shown = {c.id: (c.used, c.voided) for c in await members.my_coupons(ALICE)}
        assert shown == {kept.id: (False, True), spent.id: (True, False)}
        with pytest.raises(StoreError) as voided:  # a voided code is known (no guess counted) and refused
            await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": kept.code})
        assert voided.value.code is ErrorCode.COUPON_EXHAUSTED


async def test_a_referral_coupon_is_issued_once_per_referred_person_and_voided_by_the_refund(
        db_url: str, tmp_path: Path) -> None:
    marketing = {"members": {"referral_points": 30, "referral_coupon": "THANKS"}}
    async with open_shop(db_url, tmp_path, marketing=marketing) as (app, notifier, _):
        members = app.shop.members
        await import_n(app, 5)
        await campaign(app, "THANKS", 20)
        await invited(app, ALICE, BOB)
        first = await buy(app, BOB)
        await buy(app, BOB)  # a second order rewards nothing more
        await settle(app)
        mine = await members.my_coupons(ALICE)
        assert [(c.coupon.name, c.source, c.used) for c in mine] == [("THANKS", "referral", False)]
        assert await members.points(ALICE) == 30
        assert [n.params for n in notifier.notices_to(ALICE.external_id, "member_coupons.referral_rewarded")] == [
            {"name": "THANKS"}]
        assert await members.my_coupons(BOB) == []

        await refund(app, first.id)
        assert [(c.voided, c.used) for c in await members.my_coupons(ALICE)] == [(True, False)]
        assert await members.points(ALICE) == 0
        await buy(app, BOB)  # not rewarded again after the refund
        assert len(await members.my_coupons(ALICE)) == 1


async def test_a_used_referral_coupon_stays_used_after_the_refund(db_url: str, tmp_path: Path) -> None:
    marketing = {"members": {"referral_coupon": "THANKS"}}  # a coupon instead of points
    async with open_shop(db_url, tmp_path, marketing=marketing) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await campaign(app, "THANKS", 20)
        screens = await flow_of(app).on_action(Ctx(ALICE, ALICE.external_id), "invite")
        assert "you get a coupon" in screens[0].body and "points" not in screens[0].body
        await start(app, BOB, link_of(app, ALICE))
        first = await buy(app, BOB)
        [mine] = await members.my_coupons(ALICE)
        order = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": mine.code})
        assert (order.amount, (await pay(app, order)).outcome) == (800, "delivered")
        await refund(app, first.id)
        assert [(c.voided, c.used) for c in await members.my_coupons(ALICE)] == [(False, True)]


async def test_the_gift_coupon_comes_once_per_person_linked_accounts_included(db_url: str, tmp_path: Path) -> None:
    marketing = {"members": {"gift_coupon": "WELCOME"}}
    async with open_shop(db_url, tmp_path, marketing=marketing) as (app, _, _):
        members = app.shop.members
        await campaign(app, "WELCOME", 15)
        assert "A WELCOME coupon is yours" in await start(app, ALICE)
        assert "coupon is yours" not in await start(app, ALICE)
        alt = Buyer("wechat", "o-alice")
        async with app.db.uow(write=True) as uow:
            await uow.risk.set_links([ALICE, alt], "P-alice", "L-alice", app.clock.now())
            await uow.commit()
        assert "coupon is yours" not in await start(app, alt)  # the same person
        assert [c.source for c in await members.my_coupons(alt)] == ["gift"]  # linked accounts see it too
        assert "A WELCOME coupon is yours" in await start(app, BOB)
        code = (await members.my_coupons(BOB))[0].code
        assert code and code not in await plain_dump(app)


async def test_the_gift_coupon_on_first_purchase_is_voided_by_its_refund_and_skipped_when_the_campaign_is_off(
        db_url: str, tmp_path: Path) -> None:
    marketing = {"members": {"gift_coupon": "WELCOME", "gift_points": 20, "gift_on": "purchase"}}
    async with open_shop(db_url, tmp_path, marketing=marketing) as (app, _, _):
        members = app.shop.members
        await import_n(app, 5)
        await campaign(app, "WELCOME", 15)
        first = await buy(app, ALICE)
        assert [c.source for c in await members.my_coupons(ALICE)] == ["gift"]
        assert await members.points(ALICE) == 20
        await refund(app, first.id)
        assert [c.voided for c in await members.my_coupons(ALICE)] == [True]
        assert await members.points(ALICE) == 0

        await app.shop.coupons.set_active("WELCOME", False)  # the campaign off: the points still come
        await buy(app, BOB)
        assert await members.my_coupons(BOB) == [] and await members.points(BOB) == 20
        async with app.db.uow() as uow:
            skipped = await uow.audit.counts("mcoupon_skipped", [BOB.key],
                                             since=app.clock.now() - timedelta(hours=1))
        assert skipped == {BOB.key: 1}


def test_the_config_refuses_a_mall_coupon_without_its_campaign_or_with_a_sku(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cfg.db"
    with pytest.raises(ConfigError, match="coupon"):
        make_settings(url, tmp_path, marketing={"members": {"mall": [{"reward": "coupon", "points": 5}]}})
    with pytest.raises(ConfigError, match="coupon"):
        make_settings(url, tmp_path, marketing={"members": {"mall": [
            {"reward": "coupon", "coupon": "A", "sku": "X", "points": 5}]}})
    with pytest.raises(ConfigError, match="coupon twice"):
        make_settings(url, tmp_path, marketing={"members": {"mall": [
            {"reward": "coupon", "coupon": "a", "points": 5}, {"reward": "coupon", "coupon": "A", "points": 9}]}})


async def test_coupon_rewards_with_coupons_off_stop_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="coupons"):
        async with open_shop(f"sqlite+aiosqlite:///{tmp_path}/off.db", tmp_path,
                             marketing={"coupons": {"enabled": False}, **MALL}):
            pass


async def test_a_chat_buyer_is_told_in_words_when_the_mall_coupon_cannot_be_given(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, marketing=MALL) as (app, _, _):
        await campaign(app)
        await give_points(app, ALICE, 60)
        await app.shop.coupons.set_active("MALLTEN", False)  # turned off between the mall screen and the tap
        screens = await flow_of(app).on_action(Ctx(ALICE, ALICE.external_id), "mall_coupon_buy:MALLTEN")
        said = "\n".join(s.title + "\n" + s.body for s in screens)
        assert "The coupon MALLTEN cannot be given now" in said and "Nothing was taken" in said, said
        assert await app.shop.members.points(ALICE) == 60 and await app.shop.members.my_coupons(ALICE) == []
