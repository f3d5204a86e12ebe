"""The life of an order as buyers see it: hold, pay once, delivery, refunds, expiry, "My orders", reveals."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.orders import PaymentNotice
from core.shop import REVEALS_PER_HOUR
from tests.helpers import (
    PROVIDER,
    SKU,
    buyer,
    import_lines,
    import_n,
    notice_for,
    open_shop,
    order_status,
    pay,
    payments_for,
    product_id,
    settle,
    stock_of,
)

ALICE, BOB, MALLORY = buyer("alice"), buyer("bob"), buyer("mallory")


async def _reserve(app, who=ALICE, qty: int = 1):
    return await app.shop.reserve(who, await product_id(app), qty, "en")


# -- paying once --------------------------------------------------------------------------------------------

async def test_given_a_held_order_when_the_provider_sends_the_same_payment_5_times_then_it_is_delivered_once(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway), \
            open_shop(db_url, tmp_path) as (app2, notifier2, gateway2):
        codes = await import_n(app, 3)
        order = await _reserve(app)
        notice = notice_for(order, "tx-1")
        # Three copies of the notice arrive at once, on two store processes; then two late retries.
        first = await asyncio.gather(app.shop.pay(notice), app2.shop.pay(notice), app.shop.pay(notice))
        late = [await app2.shop.pay(notice), await app.shop.pay(notice)]
        await settle(app, app2)

        outcomes = sorted(r.outcome for r in [*first, *late])
        assert outcomes == ["delivered", "duplicate", "duplicate", "duplicate", "duplicate"]
        deliveries = notifier.deliveries + notifier2.deliveries
        assert len(deliveries) == 1
        recipient, delivery = deliveries[0]
        assert recipient == ALICE.external_id and delivery.order.id == order.id
        assert len(delivery.codes) == 1 and delivery.codes[0] in codes
        assert [p.provider_txn_id for p in await payments_for(app, order.id)] == ["tx-1"]
        assert gateway.refunds == [] and gateway2.refunds == []
        assert await stock_of(app) == (2, 0, 1)
        assert await order_status(app, order.id) == "delivered"


async def test_given_a_delivered_order_when_a_second_payment_arrives_then_it_is_refunded_and_the_buyer_told(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        await import_n(app, 3)
        order = await _reserve(app)
        assert (await pay(app, order, "tx-1")).outcome == "delivered"
        second = await pay(app, order, "tx-2")
        assert (second.outcome, second.reason) == ("refunding", "paid_twice")
        await settle(app)

        assert [(p.provider_txn_id, reason) for p, reason in gateway.refunds] == [("tx-2", "paid_twice")]
        told = notifier.notices_to(ALICE.external_id, "refund.done")
        assert len(told) == 1 and told[0].params["order"] == order.id
        assert len(notifier.deliveries) == 1  # the goods went out once
        assert {p.provider_txn_id: p.status for p in await payments_for(app, order.id)} == {
            "tx-1": "captured", "tx-2": "refunded"}
        assert await order_status(app, order.id) == "delivered"
        assert await stock_of(app) == (2, 0, 1)


@pytest.mark.parametrize("wrong", [{"amount": 999}, {"amount": 0}, {"currency": "USD"}, {"currency": "XTR"}],
                         ids=["short", "zero", "other-currency", "stars-with-store-amount"])
async def test_given_a_held_order_when_the_payment_does_not_match_the_price_then_it_is_refunded_and_nothing_sent(
        db_url: str, tmp_path: Path, wrong: dict) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        await import_n(app, 2)
        order = await _reserve(app, qty=2)
        result = await pay(app, order, "tx-bad", **wrong)
        assert (result.outcome, result.reason) == ("refunding", "amount_mismatch")
        await settle(app)

        assert notifier.deliveries == []
        assert [(p.provider_txn_id, r) for p, r in gateway.refunds] == [("tx-bad", "amount_mismatch")]
        assert len(notifier.notices_to(ALICE.external_id, "refund.done")) == 1
        # The order is still waiting for the right money, its stock still held for the buyer.
        assert await order_status(app, order.id) == "held"
        assert await stock_of(app) == (0, 2, 0)
        assert (await pay(app, order, "tx-good")).outcome == "delivered"
        await settle(app)
        assert len(notifier.deliveries) == 1 and len(notifier.deliveries[0][1].codes) == 2


async def test_given_a_product_with_a_stars_price_when_paid_in_stars_then_it_is_delivered(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        await import_n(app, 2)
        order = await _reserve(app, qty=2)
        result = await pay(app, order, "tx-stars", amount=70 * 2, currency="XTR")
        assert result.outcome == "delivered"
        await settle(app)
        assert len(notifier.deliveries) == 1 and gateway.refunds == []


async def test_given_alices_order_when_mallory_pays_for_it_then_mallory_is_refunded_and_nobody_gets_codes(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        await import_n(app, 2)
        order = await _reserve(app, ALICE)
        result = await pay(app, order, "tx-m", payer=MALLORY)
        assert (result.outcome, result.reason) == ("refunding", "wrong_payer")
        await settle(app)

        assert notifier.deliveries == []
        assert [(p.provider_txn_id, p.payer, r) for p, r in gateway.refunds] == [
            ("tx-m", MALLORY.key, "wrong_payer")]
        # The one who paid hears about the refund; Alice is not told about a stranger's money.
        assert len(notifier.notices_to(MALLORY.external_id, "refund.done")) == 1
        assert notifier.notices_to(ALICE.external_id) == []
        assert await order_status(app, order.id) == "held"
        assert await stock_of(app) == (1, 1, 0)


async def test_given_no_such_order_when_a_payment_arrives_then_it_is_refunded_to_the_payer(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        await import_n(app, 1)
        result = await app.shop.pay(PaymentNotice("260101NOSUCHID", PROVIDER, "tx-x", 1000, "CNY", BOB))
        assert (result.outcome, result.reason, result.order) == ("refunding", "unknown_order", None)
        await settle(app)

        assert [(p.provider_txn_id, r) for p, r in gateway.refunds] == [("tx-x", "unknown_order")]
        assert len(notifier.notices_to(BOB.external_id, "refund.done")) == 1
        assert notifier.deliveries == []
        assert await stock_of(app) == (1, 0, 0)
        # A retry of the same notice is not refunded twice.
        assert (await app.shop.pay(PaymentNotice("260101NOSUCHID", PROVIDER, "tx-x", 1000, "CNY", BOB))
                ).outcome == "duplicate"
        await settle(app)
        assert len(gateway.refunds) == 1


async def test_given_a_provider_that_is_not_enabled_when_a_payment_arrives_then_it_is_refused(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path, demo=False) as (app, notifier, _):
        await import_n(app, 1)
        order = await _reserve(app)
        with pytest.raises(StoreError) as err:
            await app.shop.pay(PaymentNotice(order.id, "demo", "tx-demo", order.amount, order.currency, ALICE))
        assert err.value.code is ErrorCode.PROVIDER_DISABLED
        await settle(app)
        assert notifier.deliveries == [] and await order_status(app, order.id) == "held"


# -- holds that lapse ---------------------------------------------------------------------------------------

async def test_given_a_lapsed_hold_when_paid_and_stock_remains_then_it_is_delivered(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, gateway):
        codes = await import_n(app, 2)
        order = await _reserve(app)
        clock.advance(minutes=16)  # hold is 15 minutes
        lapsed = await app.shop.expire_holds()
        assert [o.id for o in lapsed] == [order.id]
        assert await order_status(app, order.id) == "expired"
        assert await stock_of(app) == (2, 0, 0)  # the stock went back at once

        result = await pay(app, order)
        assert result.outcome == "delivered"
        await settle(app)
        assert len(notifier.deliveries) == 1 and notifier.deliveries[0][1].codes[0] in codes
        assert gateway.refunds == []
        assert await order_status(app, order.id) == "delivered"
        assert await stock_of(app) == (1, 0, 1)


async def test_given_a_lapsed_hold_when_paid_after_another_buyer_took_the_stock_then_it_is_refunded(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, gateway):
        [code] = await import_n(app, 1)
        late = await _reserve(app, ALICE)
        clock.advance(minutes=16)
        await app.shop.expire_holds()
        taken = await _reserve(app, BOB)  # the code went back and Bob got it

        result = await pay(app, late)
        assert (result.outcome, result.reason) == ("refunding", "stock_gone")
        assert await order_status(app, late.id) == "refunding"
        await settle(app)

        assert [(p.provider_txn_id, r) for p, r in gateway.refunds] == [(f"txn-{late.id}", "stock_gone")]
        told = notifier.notices_to(ALICE.external_id, "refund.done")
        assert len(told) == 1 and told[0].params == {"order": late.id, "reason": "stock_gone"}
        assert await order_status(app, late.id) == "refunded"
        assert [p.status for p in await payments_for(app, late.id)] == ["refunded"]
        assert notifier.deliveries == []

        # Bob's order is untouched and still his to pay.
        assert (await pay(app, taken)).outcome == "delivered"
        await settle(app)
        assert [(r, d.codes) for r, d in notifier.deliveries] == [(BOB.external_id, [code])]


# -- holds: cap, cancel, quantity -----------------------------------------------------------------------------

async def test_given_a_buyer_with_3_open_holds_when_holding_a_4th_then_it_is_refused(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 10)
        held = [await _reserve(app, ALICE) for _ in range(3)]
        with pytest.raises(StoreError) as err:
            await _reserve(app, ALICE)
        assert err.value.code is ErrorCode.HOLD_LIMIT and err.value.params == {"limit": 3}
        assert await stock_of(app) == (7, 3, 0)  # the refused hold froze nothing

        await _reserve(app, BOB)  # the cap is per buyer
        await app.shop.cancel(held[0].id, ALICE)
        await _reserve(app, ALICE)  # a cancelled hold no longer counts
        with pytest.raises(StoreError):
            await _reserve(app, ALICE)
        clock.advance(minutes=16)
        await _reserve(app, ALICE)  # lapsed holds no longer count either


async def test_given_the_cap_when_one_batch_carries_many_holds_of_one_buyer_then_only_3_are_granted(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 10)
        pid = await product_id(app)
        results = await asyncio.gather(*(app.shop.reserve(ALICE, pid, 1, "en") for _ in range(6)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(results) - len(refused) == 3
        assert {e.code for e in refused} == {ErrorCode.HOLD_LIMIT}
        assert await stock_of(app) == (7, 3, 0)


async def test_given_the_last_code_is_held_when_the_buyer_cancels_then_another_buyer_can_take_it_at_once(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        [code] = await import_n(app, 1)
        order = await _reserve(app, ALICE)
        with pytest.raises(StoreError) as err:
            await _reserve(app, BOB)
        assert err.value.code is ErrorCode.SOLD_OUT

        with pytest.raises(StoreError) as err:
            await app.shop.cancel(order.id, BOB)
        assert err.value.code is ErrorCode.NOT_YOUR_ORDER
        cancelled = await app.shop.cancel(order.id, ALICE)
        assert cancelled.status.value == "cancelled"
        assert await stock_of(app) == (1, 0, 0)

        bobs = await _reserve(app, BOB)
        assert (await pay(app, bobs)).outcome == "delivered"
        await settle(app)
        assert [(r, d.codes) for r, d in notifier.deliveries] == [(BOB.external_id, [code])]
        with pytest.raises(StoreError) as err:
            await app.shop.cancel(bobs.id, BOB)  # a delivered order cannot be cancelled
        assert err.value.code is ErrorCode.ORDER_NOT_PAYABLE


@pytest.mark.parametrize("qty", [0, -1, 6, 1000])
async def test_given_a_quantity_outside_the_products_limits_when_holding_then_it_is_refused(
        db_url: str, tmp_path: Path, qty: int) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 10)
        with pytest.raises(StoreError) as err:
            await _reserve(app, ALICE, qty=qty)
        assert err.value.code is ErrorCode.BAD_QUANTITY and err.value.params == {"min": 1, "max": 5}
        assert await stock_of(app) == (10, 0, 0)
        assert await app.shop.my_orders(ALICE) == []


# -- My orders and reveals ------------------------------------------------------------------------------------

async def test_given_orders_of_several_buyers_when_one_opens_my_orders_then_only_theirs_are_listed(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, _):
        await import_n(app, 10)
        a1 = await _reserve(app, ALICE)
        clock.advance(seconds=1)
        b1 = await _reserve(app, BOB)
        clock.advance(seconds=1)
        a2 = await _reserve(app, ALICE, qty=2)
        await pay(app, a1)

        assert [o.id for o in await app.shop.my_orders(ALICE)] == [a2.id, a1.id]  # newest first
        assert [o.id for o in await app.shop.my_orders(BOB)] == [b1.id]
        assert await app.shop.my_orders(MALLORY) == []
        # The same external id on another channel is another person.
        assert await app.shop.my_orders(type(ALICE)("wechat", ALICE.external_id)) == []


async def test_given_alices_delivered_order_when_someone_else_asks_to_reveal_it_then_it_is_refused(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 1)
        order = await _reserve(app, ALICE)
        await pay(app, order)
        await settle(app)
        with pytest.raises(StoreError) as err:
            await app.shop.reveal(order.id, MALLORY)
        assert err.value.code is ErrorCode.NOT_YOUR_ORDER
        with pytest.raises(StoreError) as err:
            await app.shop.order_for(order.id, MALLORY)
        assert err.value.code is ErrorCode.NOT_YOUR_ORDER
        assert [e for e in await app.shop.audit_for(order.id) if e.action == "reveal"] == []


async def test_given_an_unpaid_order_when_the_buyer_asks_to_reveal_it_then_no_codes_are_shown(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 1)
        order = await _reserve(app, ALICE)
        with pytest.raises(StoreError) as err:
            await app.shop.reveal(order.id, ALICE)
        assert err.value.code is ErrorCode.ORDER_NOT_PAYABLE


async def test_given_a_delivered_order_when_the_buyer_reveals_it_then_each_reveal_is_audited_and_limited(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, _):
        await import_n(app, 3)
        order = await _reserve(app, ALICE, qty=2)
        await pay(app, order)
        other = await _reserve(app, BOB)
        await pay(app, other)
        await settle(app)
        delivered = notifier.delivered_to(ALICE.external_id)[0].codes

        for _ in range(REVEALS_PER_HOUR):
            clock.advance(minutes=1)
            _, _, codes = await app.shop.reveal(order.id, ALICE, chat="chat-1")
            assert codes == delivered
        with pytest.raises(StoreError) as err:
            await app.shop.reveal(order.id, ALICE)
        assert err.value.code is ErrorCode.RATE_LIMITED

        reveals = [e for e in await app.shop.audit_for(order.id) if e.action == "reveal"]
        assert len(reveals) == REVEALS_PER_HOUR  # the refused one showed nothing and is not counted
        assert {(e.actor, e.channel, e.detail["chat"], e.detail["codes"]) for e in reveals} == {
            (ALICE.key, ALICE.channel, "chat-1", 2)}
        assert any(e.action == "deliver" for e in await app.shop.audit_for(order.id))

        # Bob is not limited by Alice's reveals; Alice may look again an hour later.
        assert (await app.shop.reveal(other.id, BOB))[2] == notifier.delivered_to(BOB.external_id)[0].codes
        clock.advance(minutes=52)  # the first reveal (at +1 min) is now over an hour ago
        assert (await app.shop.reveal(order.id, ALICE))[2] == delivered


async def test_given_a_burst_of_reveals_at_once_then_no_more_than_the_hourly_limit_are_shown(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 1)
        order = await _reserve(app, ALICE)
        await pay(app, order)
        results = await asyncio.gather(*(app.shop.reveal(order.id, ALICE) for _ in range(REVEALS_PER_HOUR + 5)),
                                       return_exceptions=True)
        shown = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(shown) == REVEALS_PER_HOUR
        assert all(isinstance(e, StoreError) and e.code is ErrorCode.RATE_LIMITED for e in refused)
        assert len([e for e in await app.shop.audit_for(order.id) if e.action == "reveal"]) == REVEALS_PER_HOUR


async def test_given_bursts_of_reveals_in_two_processes_at_once_then_no_more_than_the_hourly_limit_are_shown(
        db_url: str, tmp_path: Path) -> None:
    # Each process counts its burst in one batch; the buyer's lock makes the other process's batch wait for it
    # and count what it audited.
    async with open_shop(db_url, tmp_path) as (app, _, _), open_shop(db_url, tmp_path) as (app2, _, _):
        await import_n(app, 1)
        order = await _reserve(app, ALICE)
        await pay(app, order)
        results = await asyncio.gather(*(a.shop.reveal(order.id, ALICE) for _ in range(REVEALS_PER_HOUR)
                                         for a in (app, app2)), return_exceptions=True)
        shown = [r for r in results if not isinstance(r, BaseException)]
        assert len(shown) == REVEALS_PER_HOUR
        assert all(isinstance(e, StoreError) and e.code is ErrorCode.RATE_LIMITED
                   for e in results if isinstance(e, BaseException))
        assert len([e for e in await app.shop.audit_for(order.id) if e.action == "reveal"]) == REVEALS_PER_HOUR


async def test_given_a_held_order_when_two_different_payments_arrive_at_once_then_one_delivers_and_one_is_refunded(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway), \
            open_shop(db_url, tmp_path) as (app2, notifier2, gateway2):
        await import_n(app, 2)
        order = await _reserve(app)
        results = await asyncio.gather(pay(app, order, "tx-a"), pay(app2, order, "tx-b"))
        await settle(app, app2)

        assert sorted((r.outcome, r.reason) for r in results) == [("delivered", ""), ("refunding", "paid_twice")]
        refunded = next(r for r in results if r.outcome == "refunding")
        assert len(notifier.deliveries + notifier2.deliveries) == 1
        refunds = gateway.refunds + gateway2.refunds
        assert [(p.id, reason) for p, reason in refunds] == [(refunded.payment_id, "paid_twice")]
        assert await stock_of(app) == (1, 0, 1)


async def test_given_the_cap_when_one_buyer_sends_holds_to_three_store_processes_at_once_then_only_3_are_granted(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _), open_shop(db_url, tmp_path) as (app2, _, _), \
            open_shop(db_url, tmp_path) as (app3, _, _):
        await import_n(app, 20)
        pid = await product_id(app)
        apps = [app, app2, app3]
        results = await asyncio.gather(*(apps[i % 3].shop.reserve(ALICE, pid, 1, "en") for i in range(9)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, StoreError)]
        assert {e.code for e in refused} == {ErrorCode.HOLD_LIMIT}
        assert len(results) - len(refused) == 3
        assert len(await app.shop.my_orders(ALICE)) == 3
        assert await stock_of(app) == (17, 3, 0)


async def test_given_two_open_holds_when_sold_out_and_available_products_are_asked_at_once_then_the_available_is_held(
        db_url: str, tmp_path: Path) -> None:
    catalog = [{"sku": "CARD-10", "title": "Card 10", "price": 1000, "kind": "code"},
               {"sku": "GONE", "title": "Sold out card", "price": 500, "kind": "code"}]
    async with open_shop(db_url, tmp_path, catalog=catalog) as (app, _, _):
        await import_n(app, 5)
        await _reserve(app, ALICE)
        await _reserve(app, ALICE)
        gone, card = await product_id(app, "GONE"), await product_id(app, "CARD-10")
        sold_out, held = await asyncio.gather(app.shop.reserve(ALICE, gone, 1, "en"),
                                              app.shop.reserve(ALICE, card, 1, "en"), return_exceptions=True)
        assert isinstance(sold_out, StoreError) and sold_out.code is ErrorCode.SOLD_OUT
        assert not isinstance(held, BaseException), held  # the sold-out request held nothing: 3 holds, not 4
        assert await stock_of(app) == (2, 3, 0)


async def test_given_a_freed_hold_slot_in_a_busy_moment_then_neither_that_buyer_nor_the_next_is_told_sold_out_falsely(
        db_url: str, tmp_path: Path) -> None:
    catalog = [{"sku": "CARD-10", "title": "Card 10", "price": 1000, "kind": "code"},
               {"sku": "GONE", "title": "Sold out card", "price": 500, "kind": "code"}]
    async with open_shop(db_url, tmp_path, catalog=catalog) as (app, _, _):
        await import_n(app, 10)
        gone, card = await product_id(app, "GONE"), await product_id(app, "CARD-10")
        # All at the same moment: Alice's first try fails (sold out), so her 4th request still fits her cap.
        results = await asyncio.gather(
            app.shop.reserve(ALICE, gone, 1, "en"), app.shop.reserve(ALICE, card, 1, "en"),
            app.shop.reserve(ALICE, card, 1, "en"), app.shop.reserve(ALICE, card, 1, "en"),
            app.shop.reserve(ALICE, card, 1, "en"), app.shop.reserve(BOB, card, 1, "en"),
            return_exceptions=True)
        codes = [r.code if isinstance(r, StoreError) else "held" for r in results]
        assert codes == [ErrorCode.SOLD_OUT, "held", "held", "held", ErrorCode.HOLD_LIMIT, "held"]
        assert await stock_of(app, "CARD-10") == (6, 4, 0)


async def test_given_a_code_past_its_expiry_date_then_it_is_never_sold_nor_counted_as_stock(
        db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, notifier, _):
        report = await import_lines(app, [b"code,expires_at\n", b"EXPIRING-1,2026-01-02T00:00:00Z\n",
                                          b"LASTING-1,\n"])
        assert report.imported == 2
        clock.advance(days=2)
        lines = {s.sku: s for s in await app.shop.stock()}
        assert (lines[SKU].available, lines[SKU].expired) == (1, 1)
        view = await app.shop.product_view(await product_id(app))
        assert view.available == 1 and view.low

        order = await _reserve(app)
        await pay(app, order)
        await settle(app)
        assert notifier.deliveries[0][1].codes == ["LASTING-1"]
        with pytest.raises(StoreError) as err:
            await _reserve(app, buyer("late"))
        assert err.value.code is ErrorCode.SOLD_OUT
        assert (await app.shop.product_view(await product_id(app))).available == 0
