"""Pricing: what an order costs and what payment settles it. A chat order costs the product's price times the
quantity (in the store currency, or its Stars price times the quantity), fixed when the order is made; only that
amount in that currency delivers, anything else is refunded. A reseller pays its tier: its price list, else the
list price less its discount. The order book (core/orders.py) on the fake unit of work."""
from __future__ import annotations

from datetime import timedelta

import pytest

from core.clock import FakeClock
from core.errors import ErrorCode, StoreError
from core.models import Buyer, CodeStatus, Kind, Order, OrderStatus, Product
from core.orders import OrderBook, OrderPolicy, PaymentNotice, PaymentResult, ReserveRequest
from core.resellers import Reseller
from tests.unit.fakes import FakeUnitOfWorkFactory

ALICE = Buyer("telegram", "alice")


@pytest.fixture
def book(fake: FakeUnitOfWorkFactory) -> OrderBook:
    return OrderBook(fake.clock, OrderPolicy(hold_minutes=15, max_open_holds=3))


async def reserve(fake: FakeUnitOfWorkFactory, book: OrderBook, product: Product, qty: int) -> Order | StoreError:
    async with fake(write=True) as uow:
        [result] = await book.reserve_batch(uow, [ReserveRequest(ALICE, product.id, qty, "en")])
        await uow.commit()
    return result


async def pay(fake: FakeUnitOfWorkFactory, book: OrderBook, order: Order, amount: int, currency: str,
              txn: str = "tx-1") -> PaymentResult:
    async with fake(write=True) as uow:
        [result] = await book.pay_batch(uow, [PaymentNotice(order.id, "demo", txn, amount, currency, ALICE)])
        await uow.commit()
    return result


async def test_an_order_costs_the_unit_price_times_the_quantity_and_in_stars_the_stars_price_times_it(
        fake: FakeUnitOfWorkFactory, book: OrderBook) -> None:
    card = fake.add_product("CARD", price=1250, stars=70)
    fake.add_codes(card, 3)
    order = await reserve(fake, book, card, 3)
    assert isinstance(order, Order)
    assert (order.unit_price, order.amount, order.currency) == (1250, 3750, "CNY")
    assert order.price_in("CNY") == 3750 and order.price_in("XTR") == 210
    assert order.price_in("USD") is None  # no price in a currency the shop does not sell in


@pytest.mark.parametrize("qty", [0, 1, 6, 1000])
async def test_a_quantity_outside_the_products_limits_is_refused_and_holds_nothing(
        fake: FakeUnitOfWorkFactory, book: OrderBook, qty: int) -> None:
    card = fake.add_product("CARD", min_qty=2, max_qty=5)
    fake.add_codes(card, 10)
    refused = await reserve(fake, book, card, qty)
    assert isinstance(refused, StoreError) and refused.code is ErrorCode.BAD_QUANTITY
    assert refused.params == {"min": 2, "max": 5}  # the buyer is told what they may order
    assert len(fake.pool(card)) == 10 and fake.orders == {}


@pytest.mark.parametrize(("amount", "currency"), [(2000, "CNY"), (140, "XTR")], ids=["store-currency", "stars"])
async def test_paying_exactly_the_price_delivers_the_codes_at_once(
        fake: FakeUnitOfWorkFactory, book: OrderBook, amount: int, currency: str) -> None:
    card = fake.add_product("CARD", price=1000, stars=70)
    fake.add_codes(card, 2)
    order = await reserve(fake, book, card, 2)
    result = await pay(fake, book, order, amount, currency)
    assert result.outcome == "delivered"
    assert fake.orders[order.id].status is OrderStatus.DELIVERED
    assert len(fake.codes_of(order.id, CodeStatus.SOLD)) == 2
    assert [(i.kind, i.order_id) for i in fake.outbox] == [("deliver", order.id)]


@pytest.mark.parametrize(("amount", "currency"), [(1999, "CNY"), (0, "CNY"), (2000, "USD"), (2000, "XTR")],
                         ids=["short", "zero", "other-currency", "stars-with-the-store-amount"])
async def test_paying_another_amount_or_currency_is_refunded_and_the_codes_wait_for_the_right_payment(
        fake: FakeUnitOfWorkFactory, book: OrderBook, amount: int, currency: str) -> None:
    card = fake.add_product("CARD", price=1000, stars=70)
    fake.add_codes(card, 2)
    order = await reserve(fake, book, card, 2)
    result = await pay(fake, book, order, amount, currency)
    assert (result.outcome, result.reason) == ("refunding", "amount_mismatch")
    assert [(i.kind, i.payload["reason"]) for i in fake.outbox] == [("refund", "amount_mismatch")]
    assert fake.orders[order.id].status is OrderStatus.HELD
    assert len(fake.codes_of(order.id, CodeStatus.HELD)) == 2
    assert (await pay(fake, book, order, 2000, "CNY", "tx-2")).outcome == "delivered"


async def test_a_product_without_a_stars_price_cannot_be_paid_in_stars(
        fake: FakeUnitOfWorkFactory, book: OrderBook) -> None:
    card = fake.add_product("CARD", price=1000, stars=None)
    fake.add_codes(card, 1)
    order = await reserve(fake, book, card, 1)
    assert (await pay(fake, book, order, 1000, "XTR")).reason == "amount_mismatch"


async def test_the_buyer_pays_the_price_of_when_they_ordered_even_if_the_merchant_changes_it(
        fake: FakeUnitOfWorkFactory, book: OrderBook) -> None:
    card = fake.add_product("CARD", price=1000)
    fake.add_codes(card, 1)
    order = await reserve(fake, book, card, 1)
    fake.state.products[card.id].price = 1500  # the merchant raises the price while Alice pays
    fake.clock.advance(minutes=1)
    assert (await pay(fake, book, order, 1000, "CNY")).outcome == "delivered"


def _reseller(discount: int = 0, prices: dict[str, int] | None = None, balance: int = 0,
              credit: int = 0) -> Reseller:
    return Reseller(1, "acme", "active", discount, dict(prices or {}), credit, balance, "CNY",
                    FakeClock().now() - timedelta(days=1))


def _product(sku: str, price: int) -> Product:
    return Product(1, sku, Kind.CODE, {"en": sku}, {}, {}, price, "CNY", None)


def test_a_reseller_pays_its_price_list_for_the_skus_on_it_and_the_discounted_list_price_for_the_rest() -> None:
    r = _reseller(discount=10, prices={"VIP": 500})
    assert r.price_for(_product("VIP", 1000)) == 500  # the price list wins over the discount
    assert r.price_for(_product("CARD", 1000)) == 900  # 10% off
    assert _reseller().price_for(_product("CARD", 1000)) == 1000  # no tier: the list price


@pytest.mark.parametrize(("price", "discount", "pays"), [(1005, 10, 905), (1004, 10, 904), (999, 15, 849),
                                                         (1, 50, 1), (1000, 100, 0)])
def test_a_resellers_discounted_price_is_rounded_half_up_to_the_minor_unit(price: int, discount: int,
                                                                             pays: int) -> None:
    assert _reseller(discount=discount).price_for(_product("CARD", price)) == pays


def test_a_reseller_may_spend_its_balance_plus_its_credit_limit() -> None:
    assert _reseller(balance=3000, credit=2000).spendable == 5000
    assert _reseller(balance=-500, credit=2000).spendable == 1500  # already on credit
