"""Coupons (core/coupons.py) through the one order pipeline: what a buyer pays with a code, every refusal (nothing
held), use limits under a race on SQLite and PostgreSQL (two processes on one database), uses given back when an
order lapses, is cancelled or refunded, and taken again by a late payment; codes kept only as fingerprints."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.admin import Merchant
from core.clock import FakeClock
from core.coupons import AMOUNT, PERCENT, CouponCode, CouponError, Terms
from core.errors import ErrorCode, StoreError
from core.links import shown
from core.models import Buyer, Order
from core.ports import UnitOfWork
from core.promotions import Priced, Promotion
from handlers.admin import AdminFlow
from handlers.errors import text
from locales import Translator
from storage import tables as t
from tests.helpers import (
    SKU,
    buyer,
    import_n,
    open_shop,
    order_status,
    pay,
    product_id,
    settle,
    stock_of,
)

ALICE, BOB = buyer("alice"), buyer("bob")
OTHER = {"sku": "GIFT-5", "title": "Gift card 5", "price": 500, "kind": "code", "category": "gifts"}
CATALOG = [{"sku": SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5,
            "category": "games"}, OTHER]


def terms(off: str = "10%", **kw: Any) -> Terms:
    kind, value = (PERCENT, int(off[:-1])) if off.endswith("%") else (AMOUNT, int(off))
    return Terms(kind, value, "CNY", **kw)


async def used(app: Any, name: str) -> int:
    return next(c.used for c in await app.shop.coupons.all() if c.name == name)


async def refused(app: Any, who: Buyer, code: str, qty: int = 1, sku: str = SKU) -> StoreError:
    with pytest.raises(StoreError) as e:
        await app.shop.reserve(who, await product_id(app, sku), qty, "en", promo={"coupon": code})
    return e.value


async def test_a_shared_code_takes_its_share_off_and_the_buyer_pays_that(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, notifier, _):
        await import_n(app, 5)
        await app.shop.coupons.create("spring", "SPRING-2026", terms("10%"))
        order = await app.shop.reserve(ALICE, await product_id(app), 2, "en", promo={"coupon": "spring 2026"})
        assert (order.amount, order.discount) == (1800, 200)  # typed in lower case with a space: the same code
        assert order.price_in("XTR") == 126  # 140 Stars, a tenth off
        assert order.promo["coupon"]["name"] == "SPRING"
        assert (await pay(app, order)).outcome == "delivered"
        await settle(app)
        assert len(notifier.delivered_to(ALICE.external_id)) == 1
        assert await used(app, "SPRING") == 1
        plain = await app.shop.reserve(BOB, await product_id(app), 1, "en")
        assert (plain.amount, plain.discount) == (1000, 0)


async def test_an_amount_coupon_never_makes_an_order_free(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        await app.shop.coupons.create("BIG", "BIGBIG99", terms("5000"))
        await app.shop.coupons.create("ALL", "ALLOFF100", terms("100%"))
        big = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": "BIGBIG99"})
        assert (big.amount, big.discount, big.price_in("XTR")) == (1, 999, 1)
        full = await app.shop.reserve(BOB, await product_id(app), 1, "en", promo={"coupon": "ALLOFF100"})
        assert full.amount == 1


async def test_every_bad_code_is_refused_in_words_and_holds_nothing(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    now = clock.now()
    async with open_shop(db_url, tmp_path, catalog=CATALOG, clock=clock) as (app, _, _):
        await import_n(app, 5)
        await import_n(app, 2, sku="GIFT-5", prefix="GIFT")
        desk = app.shop.coupons
        await desk.create("OLD", "OLDCODE1", terms(ends_at=now - timedelta(hours=1)))
        await desk.create("LATER", "LATER123", terms(starts_at=now + timedelta(days=1)))
        await desk.create("ONCE", "ONCE1234", terms(total_limit=1))
        await desk.create("GAMES", "GAMES123", terms(categories=("Games",)))
        await desk.create("CARD", "CARD1234", terms(skus=(SKU,)))
        await desk.create("MIN", "MIN12345", terms(min_spend=1500))
        await desk.create("OFF", "OFF12345", terms())
        await desk.set_active("OFF", False)
        first = await app.shop.reserve(BOB, await product_id(app), 1, "en", promo={"coupon": "ONCE1234"})
        assert first.discount == 100

        cases = [("OLDCODE1", ErrorCode.COUPON_EXPIRED, SKU), ("LATER123", ErrorCode.COUPON_NOT_STARTED, SKU),
                 ("ONCE1234", ErrorCode.COUPON_EXHAUSTED, SKU), ("GAMES123", ErrorCode.COUPON_SCOPE, "GIFT-5"),
                 ("CARD1234", ErrorCode.COUPON_SCOPE, "GIFT-5"), ("MIN12345", ErrorCode.COUPON_MIN_SPEND, SKU),
                 ("OFF12345", ErrorCode.COUPON_EXPIRED, SKU), ("NOSUCHCODE", ErrorCode.COUPON_UNKNOWN, SKU)]
        for code, error, sku in cases:
            e = await refused(app, ALICE, code, sku=sku)
            assert e.code is error, code
            assert code not in str(e)  # a code never appears in what is raised (logs)
        assert (await refused(app, ALICE, "MIN12345")).params["amount"] == 1500
        assert await stock_of(app) == (4, 1, 0)  # only Bob's first order holds a code
        assert await stock_of(app, "GIFT-5") == (2, 0, 0)
        # in scope and above the minimum, the same codes work
        games = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": "GAMES123"})
        assert games.discount == 100
        minimum = await app.shop.reserve(ALICE, await product_id(app), 2, "en", promo={"coupon": "MIN12345"})
        assert minimum.discount == 200
        tr, short = Translator(), await refused(app, BOB, "MIN12345")
        assert "15.00" in text(tr, "en", short) and "MIN" in text(tr, "en", short)
        assert "满" in text(tr, "zh_CN", short)


async def test_guessing_codes_is_limited_per_hour_and_raises_the_risk_score(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, catalog=CATALOG, clock=clock) as (app, _, _):
        await import_n(app, 3)
        await app.shop.coupons.create("REAL", "REALCODE1", terms())
        limit = app.shop.coupons.promotion.max_guesses
        # each wrong code scores 5 by default (6 of them: a challenge); 1 here, so the hourly limit shows first
        app.shop.guard.configure(replace(app.shop.guard.policy, coupon_guess_points=1))
        before = await app.shop.risk.risk_for(ALICE)
        lefts = [(await refused(app, ALICE, f"GUESS{i:04d}")).params["left"] for i in range(limit)]
        assert lefts == list(range(limit - 1, -1, -1))
        # the hour's guesses are spent: even the real code is refused now, nothing held
        assert (await refused(app, ALICE, "REALCODE1")).code is ErrorCode.RATE_LIMITED
        assert await stock_of(app) == (3, 0, 0)
        after = await app.shop.risk.risk_for(ALICE)
        assert after.standing.score == before.standing.score + limit
        assert [r.points for r in after.standing.reasons if r.signal == "coupon_guesses"] == [limit]
        # Bob is not limited by Alice's guesses; an hour later Alice may try again
        assert (await app.shop.reserve(BOB, await product_id(app), 1, "en", promo={"coupon": "REALCODE1"})).discount
        clock.advance(minutes=61)
        assert (await app.shop.reserve(ALICE, await product_id(app), 1, "en",
                                       promo={"coupon": "REALCODE1"})).discount == 100


async def test_a_per_buyer_limit_counts_linked_accounts_as_one(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 5)
        await app.shop.coupons.create("ONEEACH", "ONEEACH1", terms(per_buyer=1))
        wechat = Buyer("wechat", "o-alice")
        await app.shop.customer(wechat, "en")
        await app.shop.customer(ALICE, "en")
        issued = await app.shop.links.issue(wechat)
        await app.shop.links.redeem(ALICE, shown(issued.code))
        assert (await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": "ONEEACH1"})).discount
        e = await refused(app, wechat, "ONEEACH1")
        assert e.code is ErrorCode.COUPON_PER_BUYER and e.params["limit"] == 1
        assert (await app.shop.reserve(BOB, await product_id(app), 1, "en", promo={"coupon": "ONEEACH1"})).discount


class TenOff(Promotion):
    """Another promotion that lowers every order first (a member level's discount, say)."""

    name = "level"

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        for item in items:
            item.take(self.name, 10, {"off": 10})


async def test_a_product_that_forbids_stacking_refuses_a_coupon_on_an_already_lowered_order(
        db_url: str, tmp_path: Path) -> None:
    catalog = [{**CATALOG[0], "rules": {"coupon_stacking": False}}, OTHER]
    async with open_shop(db_url, tmp_path, catalog=catalog) as (app, _, _):
        await import_n(app, 3)
        await import_n(app, 3, sku="GIFT-5", prefix="GIFT")
        await app.shop.coupons.create("STACK", "STACK123", terms())
        assert (await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": "STACK123"})
                ).discount == 100  # nothing else lowered it: the coupon applies
        app.shop.promotions.insert(0, TenOff())
        assert (await refused(app, ALICE, "STACK123")).code is ErrorCode.COUPON_NO_STACKING
        stacked = await app.shop.reserve(ALICE, await product_id(app, "GIFT-5"), 1, "en", promo={"coupon": "STACK123"})
        assert stacked.discount == 10 + 49  # the other product allows stacking: 10 %, of what is left, on top


async def test_single_use_codes_each_buy_once_even_when_two_processes_race(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _), \
            open_shop(db_url, tmp_path, catalog=CATALOG) as (app2, _, _):
        await import_n(app, 40)
        codes = await app.shop.coupons.generate("BATCH", 3, terms("20%"))
        assert len(set(codes)) == 3
        pid = await product_id(app)
        results = await asyncio.gather(*(a.shop.reserve(buyer(f"{a is app}{i}"), pid, 1, "en",
                                                        promo={"coupon": codes[i % 3]})
                                         for i in range(24) for a in (app, app2)), return_exceptions=True)
        made = [r for r in results if isinstance(r, Order)]
        assert len(made) == 3 and all(o.discount == 200 for o in made)
        assert {type(r) for r in results} <= {Order, StoreError}
        assert all(r.code is ErrorCode.COUPON_EXHAUSTED for r in results if isinstance(r, StoreError))
        assert await used(app, "BATCH") == 3
        assert await stock_of(app) == (37, 3, 0)


async def test_a_limited_shared_code_is_used_exactly_its_limit_under_a_crowd(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _), \
            open_shop(db_url, tmp_path, catalog=CATALOG) as (app2, _, _):
        await import_n(app, 80)
        await app.shop.coupons.create("CROWD", "CROWD2026", terms("10%", total_limit=10))
        pid = await product_id(app)
        results = await asyncio.gather(*(a.shop.reserve(buyer(f"c{i}{a is app}"), pid, 1, "en",
                                                        promo={"coupon": "CROWD2026"})
                                         for i in range(30) for a in (app, app2)), return_exceptions=True)
        made = [r for r in results if isinstance(r, Order)]
        assert len(made) == 10
        assert all(isinstance(r, StoreError) and r.code is ErrorCode.COUPON_EXHAUSTED
                   for r in results if not isinstance(r, Order))
        async with app.db.uow() as uow:
            live = await uow.coupons.uses_by([1], [o.buyer.key for o in made])
        assert sum(live.values()) == 10 == await used(app, "CROWD")


async def test_lapsed_cancelled_and_refunded_orders_give_their_coupon_back(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, catalog=CATALOG, clock=clock) as (app, _, gateway):
        await import_n(app, 10)
        codes = await app.shop.coupons.generate("BACK", 3, terms("10%"))
        await app.shop.coupons.create("SHARED", "SHARED123", terms("10%", total_limit=1))
        pid = await product_id(app)

        def ask(who: Buyer, code: str) -> Any:
            return app.shop.reserve(who, pid, 1, "en", promo={"coupon": code})

        cancelled = await ask(ALICE, codes[0])
        await app.shop.cancel(cancelled.id, ALICE)
        assert await used(app, "BACK") == 0
        assert (await ask(BOB, codes[0])).discount == 100  # the single-use code works again

        lapsing = await ask(buyer("carol"), "SHARED123")
        assert (await refused(app, ALICE, "SHARED123")).code is ErrorCode.COUPON_EXHAUSTED
        clock.advance(hours=1)
        await app.shop.expire_holds()
        assert await used(app, "SHARED") == 0
        taker = await ask(ALICE, "SHARED123")  # the lapsed hold gave it back: Alice takes it
        assert await used(app, "SHARED") == 1
        # Carol pays late: she paid the coupon's price, so her use is taken again (past the limit)
        assert (await pay(app, lapsing)).outcome == "delivered"
        assert await used(app, "SHARED") == 2 and taker.discount == 100

        assert await used(app, "BACK") == 0  # Bob's hold on the first code lapsed too
        refunded = await ask(buyer("dave"), codes[1])
        assert (await pay(app, refunded)).outcome == "delivered"
        assert await used(app, "BACK") == 1
        await AdminFlow(app.shop, Translator()).service.refund(Merchant("test", "boss"), refunded.id)
        await settle(app)
        assert await order_status(app, refunded.id) == "refunded" and gateway.refunds
        assert await used(app, "BACK") == 0
        assert (await ask(buyer("erin"), codes[1])).discount == 100


async def test_codes_are_kept_only_as_fingerprints_and_shown_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        codes = await app.shop.coupons.generate("SECRET", 5, terms())
        await app.shop.coupons.create("SHOWN", "TYPEDCODE9", terms())
        order = await app.shop.reserve(ALICE, await product_id(app), 1, "en", promo={"coupon": codes[0]})
        async with app.db.read_engine.connect() as conn:
            rows = [list(await conn.execute(select(table)))
                    for table in (t.coupons, t.coupon_codes, t.coupon_uses, t.orders, t.audit)]
        dump = str(rows)
        assert all(c not in dump for c in [*codes, "TYPEDCODE9"])
        assert codes[0] not in str(order.promo)
        listed = await app.shop.coupons.all()
        assert [(c.name, c.codes, c.used, c.single_use) for c in listed] == [("SECRET", 5, 1, True),
                                                                              ("SHOWN", 1, 0, False)]


async def test_the_product_screen_quote_shows_the_coupon_price_and_a_typed_guess_is_counted(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        await app.shop.coupons.create("LOOK", "LOOK12345", terms("25%"))
        p = await app.shop.product(await product_id(app))
        quote = await app.shop.coupons.try_code(ALICE, p, 2, "look12345")
        assert (quote.amount, quote.list_amount) == (1500, 2000)
        assert [(n.key, n.params) for n in quote.notes] == [("coupons.applied", {"name": "LOOK", "off": 500})]
        assert await stock_of(app) == (2, 0, 0) and await used(app, "LOOK") == 0
        with pytest.raises(StoreError) as e:
            await app.shop.coupons.try_code(ALICE, p, 1, "NOPE")
        assert e.value.code is ErrorCode.COUPON_UNKNOWN
        async with app.db.uow() as uow:
            assert (await uow.audit.counts("coupon_miss", [ALICE.key], since=datetime(2000, 1, 1).astimezone())
                    ) == {ALICE.key: 1}


async def test_merchant_mistakes_are_refused(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        desk = app.shop.coupons
        await desk.create("DUP", "DUPCODE1", terms())
        bad = [(desk.create("DUP", "OTHER123", terms()), CouponCode.NAME_TAKEN),
               (desk.create("NEW", "dup-code-1", terms()), CouponCode.CODE_TAKEN),
               (desk.create("NEW", "ab", terms()), CouponCode.BAD_CODE),
               (desk.create("bad name!", "GOODCODE1", terms()), CouponCode.BAD_NAME),
               (desk.set_active("NOPE", False), CouponCode.NO_SUCH),
               (desk.generate("GEN", 0, terms()), CouponCode.BAD_COUNT)]
        for call, code in bad:
            with pytest.raises(CouponError) as e:
                await call
            assert e.value.code is code
        assert [c.name for c in await desk.all()] == ["DUP"]


async def test_a_few_wrong_codes_at_the_default_risk_points_bring_a_challenge_before_the_next_order(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        policy = app.shop.guard.policy
        assert (policy.coupon_guess_points, policy.new_account_points, policy.challenge_at) == (5, 10, 30)
        for i in range(4):  # a new account (10) and four wrong codes (4 x 5): 30, a challenge
            assert (await refused(app, ALICE, f"GUESS{i:04d}")).code is ErrorCode.COUPON_UNKNOWN
        assert (await refused(app, ALICE, "")).code is ErrorCode.CHALLENGE_REQUIRED
        assert await stock_of(app) == (2, 0, 0)


async def test_with_coupons_off_a_code_is_refused_not_ignored(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        await import_n(app, 2)
        await app.shop.coupons.create("LIVE", "LIVECODE1", terms())
        app.shop.promotion("coupon").enabled = False  # what marketing.coupons.enabled: false sets up
        assert (await refused(app, ALICE, "LIVECODE1")).code is ErrorCode.COUPON_UNKNOWN
        assert await stock_of(app) == (2, 0, 0) and await used(app, "LIVE") == 0
        plain = await app.shop.reserve(ALICE, await product_id(app), 1, "en")
        assert plain.amount == 1000
