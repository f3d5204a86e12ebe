"""The risk check of every order: allow, challenge, review and refuse, each from its signals; a scalper is
stopped while ordinary buyers in the same rush pass untouched; bans and the review queue. Real SQLite and
PostgreSQL, FakeClock."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.errors import ErrorCode, StoreError
from core.models import AuditEntry, Buyer, OrderStatus
from core.orders import ReserveRequest
from handlers.customer import Ctx, CustomerFlow
from handlers.errors import message_of
from locales import Translator
from storage.db import Database
from tests.helpers import buyer, import_n, order_status, pay, settle, stock_of
from tests.risk_helpers import START, open_guarded, product, refusal
from tests.test_suppliers_migration import _alembic

ALICE, BOB = buyer("alice"), buyer("bob")
ADMIN = Buyer("test", "merchant")


async def _pid(app: Any, sku: str = "A") -> int:
    p = await app.shop.product_by_sku(sku)
    assert p is not None
    return p.id


async def _risk_of(app: Any, order_id: str):  # noqa: ANN202
    async with app.db.uow() as uow:
        return (await uow.risk.get_many([order_id])).get(order_id)


async def _known(app: Any, *buyers: Buyer) -> None:
    """Make the buyers old customers of the shop (first seen a day ago)."""
    for b in buyers:
        c = await app.shop.customer(b, "en")
        c.created_at = app.clock.now() - timedelta(days=1)
        await app.shop.save_customer(c)


def _answer(err: StoreError) -> str:
    a, b = err.params["question"].split(" + ")
    return str(int(a) + int(b))


# -- allow ----------------------------------------------------------------------------------------------------

async def test_given_an_ordinary_buyer_then_the_order_passes_untouched_and_a_new_account_is_noted(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 5, "A")
        await _known(app, BOB)
        new = await app.shop.reserve(ALICE, await _pid(app), 1, "en")
        old = await app.shop.reserve(BOB, await _pid(app), 1, "en")
        assert new.status is OrderStatus.HELD and old.status is OrderStatus.HELD
        row = await _risk_of(app, new.id)
        assert row is not None and row.decision == "allow" and row.score == 10
        assert [r["signal"] for r in row.reasons] == ["new_account"]
        assert await _risk_of(app, old.id) is None  # nothing scored: nothing stored


# -- challenge ------------------------------------------------------------------------------------------------

async def test_given_a_high_value_order_from_a_new_account_then_a_challenge_and_passing_it_lets_it_through(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("BIG", price=120_000)]) as (app, _, _):
        await import_n(app, 5, "BIG")
        pid = await _pid(app, "BIG")
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert err.code is ErrorCode.CHALLENGE_REQUIRED and message_of(err).key == "error.challenge_required"
        assert len(err.params["options"]) == 4 and _answer(err) in err.params["options"]
        assert await stock_of(app, "BIG") == (5, 0, 0)  # nothing held
        wrong = next(o for o in err.params["options"] if o != _answer(err))
        assert not await app.shop.pass_challenge(ALICE, err.params["token"], wrong)
        assert not await app.shop.pass_challenge(ALICE, err.params["token"], _answer(err))  # used up
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert not await app.shop.pass_challenge(BOB, err.params["token"], _answer(err))  # not Bob's
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        app.clock.advance(minutes=11)
        assert not await app.shop.pass_challenge(ALICE, err.params["token"], _answer(err))  # too late
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert await app.shop.pass_challenge(ALICE, err.params["token"], _answer(err))
        order = await app.shop.reserve(ALICE, pid, 1, "en")
        row = await _risk_of(app, order.id)
        assert row is not None and row.decision == "allow" and row.score == 30
        assert {r["signal"] for r in row.reasons} == {"value", "new_account", "challenge_passed"}
        await app.shop.cancel(order.id, ALICE)
        app.clock.advance(minutes=61)  # the pass lapsed
        assert (await refusal(app.shop.reserve(ALICE, pid, 1, "en"))).code is ErrorCode.CHALLENGE_REQUIRED


async def test_given_several_accounts_on_one_phone_then_the_next_one_is_challenged(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app)
        accounts = [Buyer("test", f"sock-{i}") for i in range(4)]
        for b in accounts[:3]:
            await app.shop.risk.bind_phone(b, "+8613800138000")
            await app.shop.reserve(b, pid, 1, "en")
        await app.shop.risk.bind_phone(accounts[3], "+8613800138000")
        assert (await refusal(app.shop.reserve(accounts[3], pid, 1, "en"))).code is ErrorCode.CHALLENGE_REQUIRED
        report = await app.shop.risk.risk_for(accounts[3])
        assert {r.signal for r in report.standing.reasons} >= {"shared_phone"}
        assert sorted(b.external_id for b in report.linked) == ["sock-0", "sock-1", "sock-2"]


async def test_given_many_orders_from_one_group_chat_then_the_chat_is_slowed(db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")], risk={"chat_orders": 3, "chat_points": 30}) as (
            app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app)
        members = [buyer(f"m{i}") for i in range(5)]
        await _known(app, *members)
        for b in members[:3]:
            await app.shop.reserve(b, pid, 1, "en", chat_id="-100group")
        err = await refusal(app.shop.reserve(members[3], pid, 1, "en", chat_id="-100group"))
        assert err.code is ErrorCode.CHALLENGE_REQUIRED
        await app.shop.reserve(members[4], pid, 1, "en")  # in a private chat: nothing unusual
        app.clock.advance(minutes=11)
        await app.shop.reserve(members[3], pid, 1, "en", chat_id="-100group")


async def test_given_unpaid_holds_that_keep_lapsing_then_the_buyer_is_challenged(db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app)
        await _known(app, ALICE)
        for _ in range(2):
            for _ in range(3):
                await app.shop.reserve(ALICE, pid, 1, "en")
            app.clock.advance(minutes=16)
            assert len(await app.shop.expire_holds()) == 3
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert err.code is ErrorCode.CHALLENGE_REQUIRED
        report = await app.shop.risk.risk_for(ALICE)
        assert report.activity.abandoned == 6
        assert [(r.signal, r.points) for r in report.standing.reasons] == [("abandoned", 45)]
        app.clock.advance(hours=24)  # a day later the lapses no longer count
        await app.shop.reserve(ALICE, pid, 1, "en")


async def test_given_a_buyer_with_a_refund_then_the_next_order_is_challenged(db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app)
        await _known(app, ALICE)
        order = await app.shop.reserve(ALICE, pid, 1, "en")
        await pay(app, order)
        async with app.db.uow(write=True) as uow:  # the merchant refunded it
            await uow.orders.set_status([order.id], OrderStatus.REFUNDED, app.clock.now())
            await uow.commit()
        await app.shop.reserve(ALICE, pid, 1, "en")  # 20 points: still under the challenge line
        async with app.db.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry("report", ALICE.key, "test", app.clock.now(), order.id,
                                                 detail={"problem": "used", "outcome": "reissued"})])
            await uow.commit()
        assert (await refusal(app.shop.reserve(ALICE, pid, 1, "en"))).code is ErrorCode.CHALLENGE_REQUIRED
        assert (await app.shop.risk.risk_for(ALICE)).activity.refunds == 2


# -- review ---------------------------------------------------------------------------------------------------

REVIEW = {"review_at": 40, "refuse_at": 200}


async def test_given_a_risky_order_when_held_for_review_and_approved_then_it_is_paid_as_held(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("BIG", price=400_000)], risk=REVIEW) as (app, notifier, _):
        await import_n(app, 3, "BIG")
        pid = await _pid(app, "BIG")
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert err.code is ErrorCode.UNDER_REVIEW
        order_id = err.params["order_id"]
        assert await stock_of(app, "BIG") == (2, 1, 0)  # the stock stays held for the buyer
        [(row, order)] = await app.shop.risk.review_queue()
        assert row.order_id == order_id and row.review == "pending" and row.score == 50
        assert {r["signal"] for r in row.reasons} == {"value", "new_account"}
        assert order.expires_at == START + timedelta(minutes=1440)
        app.clock.advance(minutes=30)
        assert await app.shop.expire_holds() == []  # a review outlives the normal hold
        # Every way to pay (invoice, Telegram pre-checkout, WeChat QR, My orders) reads the order through here.
        assert (await refusal(app.shop.order_for(order_id, ALICE))).code is ErrorCode.UNDER_REVIEW
        approved = await app.shop.risk.approve(order_id, ADMIN)
        assert (await app.shop.order_for(order_id, ALICE))[0].id == order_id
        assert approved.expires_at == app.clock.now() + timedelta(minutes=15)
        assert await app.shop.risk.review_queue() == []
        with pytest.raises(StoreError):
            await app.shop.risk.reject(order_id, ADMIN)  # decided already
        await settle(app)
        [notice] = notifier.notices_to(ALICE.external_id)
        assert notice.key == "risk.review.approved" and notice.params == {"order": order_id}
        assert (await pay(app, approved)).outcome == "delivered"
        assert await stock_of(app, "BIG") == (2, 0, 1)
        async with app.db.uow() as uow:
            [audit] = await uow.audit.latest("review")
        assert audit.actor == ADMIN.key and audit.detail == {"decision": "approved"}


async def test_given_an_order_under_review_when_rejected_then_its_stock_goes_back_and_the_buyer_is_told(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("BIG", price=400_000)], risk=REVIEW) as (app, notifier, _):
        await import_n(app, 3, "BIG")
        err = await refusal(app.shop.reserve(ALICE, await _pid(app, "BIG"), 1, "zh_CN"))
        order_id = err.params["order_id"]
        rejected = await app.shop.risk.reject(order_id, ADMIN, note="stolen card")
        assert rejected.status is OrderStatus.CANCELLED and await order_status(app, order_id) == "cancelled"
        assert await stock_of(app, "BIG") == (3, 0, 0)
        with pytest.raises(StoreError):
            await app.shop.risk.approve(order_id, ADMIN)
        await settle(app)
        [notice] = notifier.notices_to(ALICE.external_id)
        assert (notice.key, notice.language) == ("risk.review.rejected", "zh_CN")
        assert (await _risk_of(app, order_id)).review == "rejected"


# -- refuse and the blacklist ----------------------------------------------------------------------------------

async def test_given_a_banned_user_phone_or_payer_then_orders_are_refused_until_unbanned(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, _, _):
        await import_n(app, 10, "A")
        pid = await _pid(app)
        await app.shop.risk.ban("user", ALICE.key, ADMIN, reason="chargebacks")
        err = await refusal(app.shop.reserve(ALICE, pid, 1, "en"))
        assert err.code is ErrorCode.RISK_REFUSED and message_of(err).key == "error.risk_refused"
        assert await stock_of(app, "A") == (10, 0, 0)
        assert (await app.shop.risk.risk_for(ALICE)).banned == ["user"]
        assert await app.shop.risk.unban("user", ALICE.key, ADMIN)
        assert not await app.shop.risk.unban("user", ALICE.key, ADMIN)  # nothing left to lift
        await app.shop.reserve(ALICE, pid, 1, "en")

        wx = Buyer("wechat", "openid-9")  # a phone ban follows the person to another account
        await app.shop.risk.bind_phone(wx, "+86 139 0000 0000")
        await app.shop.risk.ban("phone", "008613900000000", ADMIN)
        assert (await refusal(app.shop.reserve(wx, pid, 1, "en"))).code is ErrorCode.RISK_REFUSED
        await app.shop.risk.ban("payer", BOB.key, ADMIN)
        assert (await refusal(app.shop.reserve(BOB, pid, 1, "en"))).code is ErrorCode.RISK_REFUSED
        assert sorted((b.kind, b.value) for b in await app.shop.risk.bans()) == [
            ("payer", BOB.key), ("phone", "8613900000000")]
        with pytest.raises(ValueError):
            await app.shop.risk.ban("email", "x@y", ADMIN)
        async with app.db.uow() as uow:
            bans = await uow.audit.latest("ban")
            unbans = await uow.audit.latest("unban")
        assert [(e.actor, e.detail["kind"]) for e in reversed(bans)] == [
            (ADMIN.key, "user"), (ADMIN.key, "phone"), (ADMIN.key, "payer")]
        assert [e.detail["found"] for e in reversed(unbans)] == [True, False]


# -- the scalper and the crowd --------------------------------------------------------------------------------

@pytest.mark.parametrize("solves_captchas", [False, True])
async def test_given_a_scalper_among_200_ordinary_buyers_then_he_is_stopped_and_nobody_else_is_bothered(
        db_url: str, tmp_path: Path, solves_captchas: bool) -> None:
    async with open_guarded(db_url, tmp_path, [product("A")]) as (app, notifier, _):
        await import_n(app, 300, "A")
        pid = await _pid(app)
        scalper = buyer("scalper")
        outcomes: Counter[str] = Counter()
        ordinary: Counter[str] = Counter()

        async def scalp() -> None:
            for _ in range(50):
                try:
                    order = await app.shop.reserve(scalper, pid, 1, "en")
                    outcomes[(await pay(app, order)).outcome] += 1
                except StoreError as exc:
                    outcomes[exc.code.value] += 1
                    if solves_captchas and exc.code is ErrorCode.CHALLENGE_REQUIRED:
                        await app.shop.pass_challenge(scalper, exc.params["token"], _answer(exc))
                await asyncio.sleep(0)

        async def shop_once(i: int) -> None:
            b = buyer(f"ordinary-{i}")
            try:
                order = await app.shop.reserve(b, pid, 1, "en")
                ordinary[(await pay(app, order)).outcome] += 1
            except StoreError as exc:
                ordinary[exc.code.value] += 1

        await asyncio.gather(scalp(), *[shop_once(i) for i in range(200)])
        await settle(app)
        assert ordinary == Counter({"delivered": 200})
        assert outcomes["delivered"] <= (6 if solves_captchas else 5)
        assert sum(outcomes.values()) == 50
        if solves_captchas:
            assert outcomes["risk_refused"] >= 40 and outcomes["under_review"] == 1
        else:
            assert outcomes["challenge_required"] == 45
        assert len(notifier.deliveries) == 200 + outcomes["delivered"]


# -- the schema -----------------------------------------------------------------------------------------------

async def test_0003_upgrades_a_database_of_0002_and_keeps_its_customers(blank_db_url: str) -> None:
    db = Database(blank_db_url)
    try:
        await _alembic(db, "0002")
        async with db.write_engine.begin() as conn:
            await conn.execute(text("INSERT INTO customers (channel, external_id, language, state, created_at, "
                                    "updated_at) VALUES ('test', 'u1', 'en', '{}', :now, :now)"),
                               {"now": START.replace(tzinfo=None)})
        await db.upgrade()
        async with db.uow() as uow:
            c = await uow.customers.get(Buyer("test", "u1"))
            assert c is not None and (c.phone, c.level, c.reseller) == ("", 0, False)
            assert await uow.risk.review_queue(5) == []
        await _alembic(db, "0002", down=True)
        await db.upgrade()
    finally:
        await db.dispose()


async def test_given_an_order_held_for_review_when_the_buyer_opens_it_in_the_chat_then_there_is_nothing_to_pay(
        db_url: str, tmp_path: Path) -> None:
    async with open_guarded(db_url, tmp_path, [product("BIG", price=400_000)], risk=REVIEW) as (app, _, _):
        await import_n(app, 3, "BIG")
        flow = CustomerFlow(app.shop, Translator(), shop_name="Test Shop", demo_payments=True)
        ctx = Ctx(ALICE, ALICE.external_id, "en")
        screens = await flow.on_action(ctx, f"buy:{await _pid(app, 'BIG')}:1")
        assert screens[0].error == "under_review" and "being checked" in screens[0].title + screens[0].body
        [(row, _)] = await app.shop.risk.review_queue()
        for action in (f"o:{row.order_id}", f"pay:{row.order_id}"):
            screens = await flow.on_action(ctx, action)
            assert screens[0].error == "under_review" and screens[0].invoice is None
        assert await order_status(app, row.order_id) == "held"


async def test_given_a_commit_whose_outcome_was_lost_when_the_reserve_is_retried_then_the_landed_order_is_found(
        db_url: str, tmp_path: Path) -> None:
    catalog = [product("A", per_day=1), product("BIG", price=400_000)]
    async with open_guarded(db_url, tmp_path, catalog, risk=REVIEW) as (app, _, _):
        await import_n(app, 3, "A")
        await import_n(app, 3, "BIG", prefix="B")
        order = await app.shop.reserve(ALICE, await _pid(app, "A"), 1, "en")
        # The retry of a request whose order landed (same order id): found, not refused by the quota it used up.
        again = await app.shop.committer.submit(ReserveRequest(
            ALICE, order.product_id, 1, "en", order_id=order.id))
        assert again.id == order.id and await stock_of(app, "A") == (2, 1, 0)
        err = await refusal(app.shop.reserve(BOB, await _pid(app, "BIG"), 1, "en"))
        retried = await refusal(app.shop.committer.submit(ReserveRequest(
            BOB, await _pid(app, "BIG"), 1, "en", order_id=err.params["order_id"])))
        assert retried.code is ErrorCode.UNDER_REVIEW and retried.params == err.params
        assert await stock_of(app, "BIG") == (2, 1, 0)
