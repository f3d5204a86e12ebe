"""Resellers and wallets: tier prices, a wallet that is a ledger, orders paid from it in one
transaction, no overspend when orders race, refunds credited back. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from core.admin import AdminService
from core.errors import ErrorCode, StoreError
from core.models import Buyer
from core.resellers import ResellerDesk, ResellerError
from tests.helpers import SKU, import_n, open_shop, settle, stock_of

BOSS = Buyer("test", "boss")


def desk_of(app) -> ResellerDesk:  # noqa: ANN001
    return app.resellers


async def wallet_is_consistent(desk: ResellerDesk, reseller_id: int) -> int:
    r = await desk.get(reseller_id)
    assert await desk.ledger_sum(reseller_id) == r.balance
    return r.balance


async def test_a_reseller_buys_at_the_tier_price_paid_from_the_wallet_and_gets_the_codes(db_url: str,
                                                                                         tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = desk_of(app)
        codes = set(await import_n(app, 30))
        # given a reseller at 10% off with 100.00 in the wallet
        r = await desk.create("Acme Cards", discount_percent=10)
        await desk.top_up(r.id, 10_000, actor="merchant", ref="bank-1")
        # when it buys 7 codes of a 10.00 card
        out = await desk.order(await desk.get(r.id), SKU, 7, "key-1")
        # then it gets 7 codes for 7 x 9.00, and the wallet is 37.00 with two ledger rows
        assert out.created and len(out.codes) == 7 and set(out.codes) <= codes
        assert (out.order.unit_price, out.order.amount, out.order.status.value) == (900, 6300, "delivered")
        assert await wallet_is_consistent(desk, r.id) == 3700
        rows = await desk.statement(r.id)
        assert [(e.kind, e.amount, e.balance_after) for e in rows] == [("debit", -6300, 3700),
                                                                       ("topup", 10_000, 10_000)]
        assert await stock_of(app) == (23, 0, 7)
        # and a price list beats the discount
        await desk.update(r.id, prices={SKU: 500})
        assert (await desk.order(await desk.get(r.id), SKU, 1, "key-2")).order.amount == 500


async def test_the_same_idempotency_key_returns_the_same_order_and_debits_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = desk_of(app)
        await import_n(app, 20)
        r = await desk.create("Acme")
        await desk.top_up(r.id, 10_000, actor="merchant")
        first = await desk.order(await desk.get(r.id), SKU, 3, "same")
        # a retry, and five concurrent retries, return the same order with the same codes
        again = await asyncio.gather(*[desk.order(await desk.get(r.id), SKU, 3, "same") for _ in range(5)])
        assert {a.order.id for a in again} == {first.order.id}
        assert all(a.codes == first.codes and not a.created for a in again)
        assert await wallet_is_consistent(desk, r.id) == 7000
        assert await stock_of(app) == (17, 0, 3)
        # the same key for another request is refused, and nothing changes
        with pytest.raises(ResellerError) as err:
            await desk.order(await desk.get(r.id), SKU, 4, "same")
        assert err.value.code == "idempotency_key_reused"
        assert await wallet_is_consistent(desk, r.id) == 7000


async def test_insufficient_balance_is_refused_and_nothing_is_held_or_debited(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = desk_of(app)
        await import_n(app, 20)
        r = await desk.create("Acme", credit_limit=500)
        await desk.top_up(r.id, 2_000, actor="merchant")
        with pytest.raises(ResellerError) as err:
            await desk.order(await desk.get(r.id), SKU, 3, "k")  # 30.00 > 20.00 + 5.00 credit
        assert (err.value.code, err.value.params) == ("insufficient_funds", {"needed": 3000, "available": 2500})
        assert await stock_of(app) == (20, 0, 0)
        assert await wallet_is_consistent(desk, r.id) == 2000
        # the credit limit lets the wallet go below zero, never further
        out = await desk.order(await desk.get(r.id), SKU, 2, "k2")
        assert out.order.amount == 2000 and await wallet_is_consistent(desk, r.id) == 0
        with pytest.raises(ResellerError):
            await desk.order(await desk.get(r.id), SKU, 1, "k3")
        assert await wallet_is_consistent(desk, r.id) == 0
        # sold out and bad quantities are refused the same way
        with pytest.raises(StoreError) as e2:
            await desk.order(await desk.get(r.id), SKU, 0, "k4")
        assert e2.value.code is ErrorCode.BAD_QUANTITY
        await desk.update(r.id, status="suspended")
        with pytest.raises(ResellerError) as e3:
            await desk.order(await desk.get(r.id), SKU, 1, "k5")
        assert e3.value.code == "account_suspended"


@pytest.mark.parametrize("instances", [1, 3])
async def test_racing_orders_never_spend_more_than_the_wallet(db_url: str, tmp_path: Path, instances: int) -> None:
    """60 orders of 2 codes (20.00 each) race against 250.00: exactly 12 land, through one or three stores."""
    async with AsyncExitStack() as stack:
        apps = [(await stack.enter_async_context(open_shop(db_url, tmp_path)))[0] for _ in range(instances)]
        desks = [desk_of(a) for a in apps]
        await import_n(apps[0], 200)
        r = await desks[0].create("Racer")
        await desks[0].top_up(r.id, 25_000, actor="merchant")
        reseller = await desks[0].get(r.id)
        gate = asyncio.Event()

        async def one(i: int):  # noqa: ANN202
            await gate.wait()
            try:
                return await desks[i % instances].order(reseller, SKU, 2, f"race-{i}")
            except ResellerError as exc:
                return exc

        tasks = [asyncio.create_task(one(i)) for i in range(60)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*tasks)
        made = [x for x in results if not isinstance(x, Exception)]
        refused = [x for x in results if isinstance(x, ResellerError)]
        assert len(made) == 12 and len(refused) == 48
        assert {x.code for x in refused} == {"insufficient_funds"}
        assert await wallet_is_consistent(desks[0], r.id) == 1_000
        codes = [c for m in made for c in m.codes]
        assert len(codes) == len(set(codes)) == 24
        assert await stock_of(apps[0]) == (176, 0, 24)


async def test_a_refund_credits_the_wallet_back_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = desk_of(app)
        await import_n(app, 10)
        r = await desk.create("Acme")
        await desk.top_up(r.id, 5_000, actor="merchant")
        out = await desk.order(await desk.get(r.id), SKU, 2, "k")
        assert await wallet_is_consistent(desk, r.id) == 3_000
        # when the merchant refunds the order
        await AdminService(app.shop).refund(BOSS, out.order.id)
        await settle(app)
        # then the wallet gets 20.00 back (one ledger row), the order is refunded and its codes burned
        assert await wallet_is_consistent(desk, r.id) == 5_000
        assert [e.kind for e in await desk.statement(r.id)] == ["refund", "debit", "topup"]
        async with app.db.uow() as uow:
            assert (await uow.orders.get(out.order.id)).status.value == "refunded"  # type: ignore[union-attr]
            (payment,) = await uow.payments.for_order(out.order.id)
        assert (payment.provider, payment.status) == ("wallet", "refunded")
        # a second refund of the same payment (an outbox retry) credits nothing more
        await desk.refund_to_wallet(payment, "merchant")
        assert await wallet_is_consistent(desk, r.id) == 5_000
        assert await stock_of(app) == (8, 0, 0)


async def test_top_ups_with_the_same_reference_credit_once(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk = desk_of(app)
        r = await desk.create("Acme")
        await desk.top_up(r.id, 1_000, actor="merchant", ref="wire-77")
        with pytest.raises(ResellerError) as err:
            await desk.top_up(r.id, 1_000, actor="merchant", ref="wire-77")
        assert err.value.code == "duplicate_topup"
        with pytest.raises(ResellerError):
            await desk.top_up(r.id, 0, actor="merchant")
        assert await wallet_is_consistent(desk, r.id) == 1_000
        with pytest.raises(ResellerError) as dup:
            await desk.create("Acme")
        assert dup.value.code == "name_taken"
