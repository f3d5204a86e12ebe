"""The promotions' place in the one order pipeline (core/promotions.py): a price decided in the reserve batch, paid
as decided, refused without holding anything, and given back when the order lapses, is cancelled or refunded.

The promotion here is this test's own (a fixed share off, with a use cap kept in memory); the real promotions have
their own tests. What is checked is what the order book does with whatever a promotion decides."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core.admin import Merchant
from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.models import Order
from core.ports import UnitOfWork
from core.promotions import Note, Priced, Promotion
from handlers.admin import AdminFlow
from locales import Translator
from tests.helpers import buyer, import_n, notice_for, open_shop, order_status, pay, product_id, settle, stock_of

ALICE, BOB = buyer("alice"), buyer("bob")


class FifthOff(Promotion):
    """20 % off while uses are left: refuses an order asking for it once they are gone."""

    name = "fifth"

    def __init__(self, uses: int) -> None:
        self.left = uses
        self.claimed: list[str] = []
        self.released: list[tuple[str, str]] = []
        self.paid_orders: list[str] = []

    async def price(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        left = self.left
        for item in items:
            if item.wanted.get("fifth") != "yes":
                continue
            if left <= 0:
                item.refuse(StoreError(ErrorCode.SOLD_OUT, sku=item.product.sku, available=0))
                continue
            left -= 1
            item.take(self.name, item.list_amount // 5, {"uses": 1})

    async def claim(self, uow: UnitOfWork, items: Sequence[Priced], now: datetime) -> None:
        for item in items:
            if self.name in item.order.promo:
                self.left -= 1
                self.claimed.append(item.order.id)

    async def release(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime, why: str) -> None:
        for o in orders:
            if self.name in o.promo:
                self.left += 1
                self.released.append((o.id, why))

    async def paid(self, uow: UnitOfWork, orders: Sequence[Order], now: datetime) -> None:
        self.paid_orders.extend(o.id for o in orders if self.name in o.promo)

    async def preview(self, uow: UnitOfWork, item: Priced, now: datetime) -> None:
        if self.left > 0:
            item.take(self.name, item.list_amount // 5, {})
            item.notes.append(Note("promotions.test", {"left": self.left}))


async def test_a_promotion_prices_the_order_and_the_buyer_pays_what_it_decided(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, notifier, gateway):
        fifth = FifthOff(uses=5)
        app.shop.add_promotion(fifth)
        await import_n(app, 5)
        pid = await product_id(app)
        order = await app.shop.reserve(ALICE, pid, 2, "en", promo={"fifth": "yes"})
        assert (order.amount, order.discount) == (1600, 400)  # listed 2 x 1000
        assert order.price_in("XTR") == 112 and order.stars_discount == 28  # 2 x 70 Stars, a fifth off
        assert order.promo == {"fifth": {"uses": 1}} and fifth.claimed == [order.id]

        # The listed price is not what this order costs: refunded, nothing delivered.
        wrong = await app.shop.pay(notice_for(order, "tx-list", amount=2000))
        assert wrong.outcome == "refunding" and wrong.reason == "amount_mismatch"
        stars = await app.shop.pay(notice_for(order, "tx-stars", amount=112, currency="XTR"))
        assert stars.outcome == "delivered"
        await settle(app)
        assert len(notifier.delivered_to(ALICE.external_id)) == 1
        assert fifth.paid_orders == [order.id]
        async with app.db.uow() as uow:
            stored = await uow.orders.get(order.id)
        assert stored is not None and (stored.currency, stored.amount) == ("XTR", 112)
        assert stored.discount == 400 and stored.promo == {"fifth": {"uses": 1}}

        plain = await app.shop.reserve(BOB, pid, 1, "en")  # asked for nothing: the listed price
        assert (plain.amount, plain.discount, plain.promo) == (1000, 0, {})


async def test_a_refused_promotion_holds_nothing_and_a_batch_cannot_take_more_than_is_left(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        fifth = FifthOff(uses=3)
        app.shop.add_promotion(fifth)
        await import_n(app, 10)
        pid = await product_id(app)
        results = await asyncio.gather(*(app.shop.reserve(buyer(i), pid, 1, "en", promo={"fifth": "yes"})
                                         for i in range(8)), return_exceptions=True)
        made = [r for r in results if isinstance(r, Order)]
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(made) == 3 and len(refused) == 5 and fifth.left == 0
        assert all(o.amount == 800 for o in made)
        assert await stock_of(app) == (7, 3, 0)  # only the three priced orders hold codes


async def test_lapsed_cancelled_and_refunded_orders_give_back_what_they_took(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with open_shop(db_url, tmp_path, clock=clock) as (app, _, gateway):
        fifth = FifthOff(uses=3)
        app.shop.add_promotion(fifth)
        await import_n(app, 5)
        pid = await product_id(app)
        lapsing = await app.shop.reserve(ALICE, pid, 1, "en", promo={"fifth": "yes"})
        cancelled = await app.shop.reserve(BOB, pid, 1, "en", promo={"fifth": "yes"})
        refunded = await app.shop.reserve(buyer("carol"), pid, 1, "en", promo={"fifth": "yes"})
        assert fifth.left == 0
        await app.shop.cancel(cancelled.id, BOB)
        assert fifth.left == 1 and fifth.released == [(cancelled.id, "cancelled")]
        assert (await pay(app, refunded)).outcome == "delivered"
        clock.advance(hours=1)
        await app.shop.expire_holds()
        assert (lapsing.id, "lapsed") in fifth.released and fifth.left == 2

        await AdminFlow(app.shop, Translator()).service.refund(Merchant("test", "boss"), refunded.id)
        await settle(app)
        assert await order_status(app, refunded.id) == "refunded" and gateway.refunds
        assert (refunded.id, "refunded") in fifth.released and fifth.left == 3


async def test_the_product_screen_quote_shows_the_promotion_price_without_holding(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        fifth = FifthOff(uses=1)
        app.shop.add_promotion(fifth)
        await import_n(app, 2)
        p = await app.shop.product(await product_id(app))
        assert p is not None
        quote = await app.shop.quote(ALICE, p, 2)
        assert (quote.amount, quote.list_amount, quote.stars, quote.discounted) == (1600, 2000, 112, True)
        assert [n.key for n in quote.notes] == ["promotions.test"]
        assert await stock_of(app) == (2, 0, 0) and fifth.left == 1
        app.shop.promotions.clear()
        plain = await app.shop.quote(ALICE, p, 2)
        assert (plain.amount, plain.stars, plain.discounted, plain.notes) == (2000, 140, False, ())
