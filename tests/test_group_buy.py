"""Group-buy (拼团): a group opened at the group price fills when `size` members paid within `hours`: then every
member gets their codes (from the payment that filled it); otherwise the group-buy-expiry job refunds every paid
member and gives the codes back. Completion racing the timer is decided once; a join after the group closed is
refused with nothing held or charged. The store on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import App
from config.settings import ConfigError, parse_settings
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.group_buy import GROUP, NEW
from core.models import Order
from tests.dbtemplate import from_template
from tests.helpers import (
    CHANNEL,
    PROVIDER,
    RecordingGateway,
    RecordingNotifier,
    buyer,
    import_n,
    order_status,
    pay,
    product_id,
    settle,
    stock_of,
)
from tests.test_admin_flow import flow_for, run

CATALOG = [{"sku": "GAME", "title": "Game key", "price": 3000, "stars": 200, "kind": "code", "max_qty": 5}]
OFFER = {"sku": "GAME", "price": 2000, "stars": 130, "size": 3, "hours": 24}


def group_settings(url: str, tmp_path: Path, offer: dict[str, Any] | None = None, catalog: list | None = None):
    return parse_settings({
        "store": {"demo": True, "max_open_holds": 10},
        "database": {"url": url},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": CATALOG if catalog is None else catalog,
        "marketing": {"group_buy": {"offers": [offer or OFFER]}},
    }, tmp_path, env={})


@asynccontextmanager
async def group_shop(url: str, tmp_path: Path, clock: FakeClock, offer: dict[str, Any] | None = None
                     ) -> AsyncIterator[tuple[App, RecordingNotifier, RecordingGateway]]:
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(group_settings(from_template(url), tmp_path, offer), clock=clock,
                         notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway})
    try:
        yield app, notifier, gateway
    finally:
        await app.close()


async def open_group(app: App, n: int = 1) -> tuple[Order, str]:
    order = await app.shop.reserve(buyer(n), await product_id(app, "GAME"), 1, "en", f"chat-{n}", promo={GROUP: NEW})
    return order, order.promo[GROUP]["id"]


async def join(app: App, gid: str, n: int) -> Order:
    return await app.shop.reserve(buyer(n), await product_id(app, "GAME"), 1, "en", f"chat-{n}", promo={GROUP: gid})


async def group_status(app: App, gid: str) -> str:
    view = await app.shop.group_buy.view(gid)
    assert view is not None
    return view.group.status


def keys(notifier: RecordingNotifier, key: str) -> list[str]:
    return sorted(n.recipient for n in notifier.notices if n.key == key)


async def test_given_a_group_of_three_when_the_third_pays_then_everyone_gets_their_codes_and_not_before(
        db_url: str, tmp_path: Path) -> None:
    async with group_shop(db_url, tmp_path, FakeClock()) as (app, notifier, gateway):
        await import_n(app, 5, "GAME")
        first, gid = await open_group(app, 1)
        assert (first.amount, first.stars_total) == (2000, 130)  # the group price, not the listed 3000
        await pay(app, first)
        second = await join(app, gid, 2)
        assert second.amount == 2000
        await pay(app, second)
        await settle(app)
        assert notifier.deliveries == []  # paid, waiting for the group
        assert [await order_status(app, o.id) for o in (first, second)] == ["pending", "pending"]
        assert keys(notifier, "group_buy.waiting") == ["chat-1", "chat-2"]
        assert await stock_of(app, "GAME") == (3, 2, 0)  # held all along

        third = await join(app, gid, 3)
        await pay(app, third)
        await settle(app)
        assert sorted(r for r, _ in notifier.deliveries) == ["chat-1", "chat-2", "chat-3"]
        assert all(len(d.codes) == 1 for _, d in notifier.deliveries)
        assert keys(notifier, "group_buy.complete") == ["chat-1", "chat-2", "chat-3"]
        assert [await order_status(app, o.id) for o in (first, second, third)] == ["delivered"] * 3
        assert await stock_of(app, "GAME") == (2, 0, 3)
        assert await group_status(app, gid) == "complete"
        assert gateway.refunds == []


async def test_given_a_group_that_does_not_fill_in_time_then_the_job_refunds_every_paid_member_and_frees_the_stock(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with group_shop(db_url, tmp_path, clock) as (app, notifier, gateway):
        await import_n(app, 5, "GAME")
        first, gid = await open_group(app, 1)
        await pay(app, first)
        second = await join(app, gid, 2)
        await pay(app, second)
        unpaid = await join(app, gid, 3)
        clock.advance(hours=1)
        app.job_runner()
        assert app.jobs is not None
        assert await app.jobs.group_buy_expiry() == "0 groups failed, 0 members refunded"  # still in time
        clock.advance(hours=24)
        assert await app.jobs.group_buy_expiry() == "1 groups failed, 2 members refunded"
        await settle(app)
        assert sorted((p.order_id, reason) for p, reason in gateway.refunds) == sorted(
            [(first.id, "group_failed"), (second.id, "group_failed")])
        assert notifier.deliveries == []
        assert [await order_status(app, o.id) for o in (first, second, unpaid)] == ["refunded", "refunded",
                                                                                    "cancelled"]
        assert keys(notifier, "group_buy.failed") == ["chat-1", "chat-2", "chat-3"]
        assert keys(notifier, "refund.done") == ["chat-1", "chat-2"]
        assert await stock_of(app, "GAME") == (5, 0, 0)
        assert await group_status(app, gid) == "failed"
        assert await app.jobs.group_buy_expiry() == "0 groups failed, 0 members refunded"  # decided once


async def test_given_the_last_payment_racing_the_timer_then_the_group_is_decided_once(
        db_url: str, tmp_path: Path) -> None:
    offer = {**OFFER, "size": 2, "hours": 1}
    pay_clock, job_clock = FakeClock(), FakeClock()
    async with group_shop(db_url, tmp_path, pay_clock, offer) as (app, notifier, gateway), \
            group_shop(db_url, tmp_path, job_clock, offer) as (other, notifier2, gateway2):
        await import_n(app, 40, "GAME")
        other.job_runner()
        assert other.jobs is not None
        outcomes = set()
        for round_ in range(8):
            # Payments see the group still in time, the job sees it past: whichever locks the group first decides.
            opener, gid = await open_group(app, 100 + round_)
            await pay(app, opener)
            last = await join(app, gid, 200 + round_)
            pay_clock.advance(minutes=59, seconds=59)
            job_clock._now = pay_clock.now() + timedelta(seconds=2)
            await asyncio.gather(pay(app, last), other.jobs.group_buy_expiry())
            await other.jobs.group_buy_expiry()  # a late payment into a failed group: refunded by the next run
            await settle(app, other)
            status = await group_status(app, gid)
            outcomes.add(status)
            mine = {opener.id, last.id}
            delivered = {d.order.id for _, d in notifier.deliveries + notifier2.deliveries} & mine
            refunded = {p.order_id for p, _ in gateway.refunds + gateway2.refunds} & mine
            if status == "complete":
                assert (delivered, refunded) == (mine, set())
            else:
                assert (status, delivered, refunded) == ("failed", set(), mine)
            pay_clock.advance(hours=2)
            job_clock._now = pay_clock.now()
        assert outcomes <= {"complete", "failed"}
        held = (await stock_of(app, "GAME"))[1]
        assert held == 0  # nothing left half decided


async def test_given_a_closed_expired_full_or_unknown_group_when_someone_joins_then_it_is_refused_and_nothing_held(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with group_shop(db_url, tmp_path, clock, {**OFFER, "size": 2}) as (app, _, gateway):
        await import_n(app, 6, "GAME")
        first, done = await open_group(app, 1)
        await pay(app, first)
        await pay(app, await join(app, done, 2))  # complete
        _, filling = await open_group(app, 3)
        await join(app, filling, 4)  # held, not paid: both seats taken
        before = await stock_of(app, "GAME")

        async def refused(gid: str, n: int) -> StoreError:
            with pytest.raises(StoreError) as exc:
                await join(app, gid, n)
            return exc.value

        assert (await refused(done, 5)).code is ErrorCode.GROUP_CLOSED
        assert (await refused(filling, 5)).code is ErrorCode.GROUP_FULL
        assert (await refused(filling, 3)).code is ErrorCode.GROUP_JOINED
        assert (await refused("ZZZZZZZZ", 5)).code is ErrorCode.GROUP_NOT_FOUND
        _, late = await open_group(app, 6)
        clock.advance(hours=25)
        assert (await refused(late, 5)).code is ErrorCode.GROUP_CLOSED
        assert (await stock_of(app, "GAME"))[0] == before[0] - 1  # only the group opened since holds a code
        assert gateway.refunds == []


async def test_given_a_complete_group_when_the_merchant_refunds_one_member_then_only_that_member_is_refunded(
        db_url: str, tmp_path: Path) -> None:
    async with group_shop(db_url, tmp_path, FakeClock(), {**OFFER, "size": 2}) as (app, _, gateway):
        await import_n(app, 2, "GAME")
        first, gid = await open_group(app, 1)
        await pay(app, first)
        second = await join(app, gid, 2)
        await pay(app, second)
        await settle(app)
        screen = await run(flow_for(app), f"/refund {second.id}")
        assert screen.error is None
        await settle(app)
        assert [(p.order_id, reason) for p, reason in gateway.refunds] == [(second.id, "merchant")]
        assert [await order_status(app, o.id) for o in (first, second)] == ["delivered", "refunded"]
        assert await group_status(app, gid) == "complete"


async def test_given_a_member_whose_hold_lapsed_then_the_seat_is_free_again(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with group_shop(db_url, tmp_path, clock, {**OFFER, "size": 2}) as (app, notifier, _):
        await import_n(app, 3, "GAME")
        first, gid = await open_group(app, 1)
        await pay(app, first)
        await join(app, gid, 2)
        clock.advance(hours=1)
        await app.shop.expire_holds()  # the second never paid: their seat goes back
        third = await join(app, gid, 3)
        await pay(app, third)
        await settle(app)
        assert sorted(r for r, _ in notifier.deliveries) == ["chat-1", "chat-3"]


def test_given_a_group_price_for_a_product_not_in_the_catalogue_then_the_store_does_not_start(tmp_path: Path) -> None:
    from app.bootstrap import group_offers  # noqa: PLC0415

    settings = group_settings("sqlite+aiosqlite:///:memory:", tmp_path, {**OFFER, "sku": "NOPE"})
    with pytest.raises(ConfigError) as refused:
        group_offers(settings)
    assert "NOPE" in str(refused.value)
