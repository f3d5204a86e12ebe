"""Supplier products bought at sale time, end to end: the customer flow, the payment, the outbox's `buy`, the
local fake supplier over real HTTP, the vault, "My orders" — on SQLite and PostgreSQL."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import App
from config.settings import parse_settings
from core.admin import Merchant
from core.clock import FakeClock
from core.models import Buyer, OutboxItem
from handlers.admin import AdminCtx, AdminFlow
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from storage import tables as t
from tests.fake_supplier import FakeSupplier
from tests.helpers import CHANNEL, PROVIDER, RecordingGateway, RecordingNotifier, order_status, pay, settle

SKU = "GAME-SUP"
CATALOG = [{"sku": SKU, "title": {"en": "Game card 10", "zh_CN": "游戏点卡 10"}, "price": 1000, "stars": 70,
            "kind": "supplier", "supplier": "up", "supplier_sku": "SUP-GAME-10", "cost": 850, "max_qty": 5}]


@pytest.fixture
async def fake():
    server = await FakeSupplier().start()
    yield server
    await server.stop()


@asynccontextmanager
async def open_store(url: str, tmp_path: Path, fake: FakeSupplier, *, clock: FakeClock | None = None,
                     catalog: list[dict[str, Any]] | None = None, **supplier: Any):
    settings = parse_settings({"store": {"demo": False}, "database": {"url": url},
                               "vault": {"key_file": str(tmp_path / "vault.key")},
                               "suppliers": {"up": fake.config(**supplier)},
                               "catalog": catalog or CATALOG}, tmp_path, env={})
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, clock=clock, notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway})
    try:
        yield app, notifier, gateway
    finally:
        await app.close()


def flow_for(app: App) -> CustomerFlow:
    return CustomerFlow(app.shop, Translator(), shop_name="Shop")


async def supply_rows(app: App) -> list:
    async with app.db.uow() as uow:
        return list((await uow.supplies.c.execute(select(t.supply_requests))).all())


async def test_given_a_supplier_product_when_a_buyer_pays_then_it_is_bought_upstream_once_and_delivered(
        db_url, tmp_path, fake):
    async with open_store(db_url, tmp_path, fake) as (app, notifier, gateway):
        flow, ctx = flow_for(app), Ctx(Buyer(CHANNEL, "u1"), "u1", "en")
        pid = (await app.shop.product_by_sku(SKU)).id
        [page] = await flow.on_action(ctx, f"p:{pid}")
        assert "Always available" in page.body
        [invoice] = await flow.on_action(ctx, f"buy:{pid}:2")
        order_id = invoice.invoice["order_id"]
        assert fake.requests == []  # nothing is bought before the money is there

        result = await pay(app, (await app.shop.order_for(order_id, ctx.buyer))[0])
        assert result.outcome == "pending" and await order_status(app, order_id) == "pending"
        [detail] = await flow.on_action(ctx, f"o:{order_id}")
        assert "waiting for the supplier" in detail.body and "preparing your order" in detail.body

        await settle(app)
        rid = "B" + order_id
        bought = fake.orders[rid].codes
        assert fake.purchases == {rid: 1} and len(bought) == 2
        assert await order_status(app, order_id) == "delivered"
        [(to, delivery)] = notifier.deliveries
        assert to == "u1" and delivery.codes == bought
        [again] = await flow.on_action(ctx, f"k:{order_id}")  # "show codes again" reads them from the vault
        assert again.secrets == bought
        [row] = await supply_rows(app)
        assert (row.request_id, row.status, row.qty, row.cost, row.supplier) == (rid, "done", 2, 1700, "up")
        async with app.db.uow() as uow:
            stored = (await uow.codes.for_orders([order_id]))[order_id]
        assert [c.status.value for c in stored] == ["sold", "sold"]
        assert not any(code.encode() in c.ciphertext for c in stored for code in bought)
        assert gateway.refunds == []


async def test_given_500s_and_a_lost_answer_the_purchase_is_retried_with_the_same_request_id_and_bought_once(
        sqlite_url, tmp_path, fake):
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, _):
        order = await app.shop.reserve(Buyer(CHANNEL, "u2"), (await app.shop.product_by_sku(SKU)).id, 1, "en")
        fake.faults["/api/buy"] = ["500", "lose"]
        await pay(app, order)
        await settle(app)
        rid = "B" + order.id
        assert [p["request_id"] for path, p in fake.requests if path == "/api/buy"] == [rid] * 3
        assert fake.purchases == {rid: 1}
        assert notifier.codes() == fake.orders[rid].codes
        assert await order_status(app, order.id) == "delivered"


async def test_given_a_supplier_that_keeps_failing_the_order_is_retried_then_refunded_and_the_buyer_told(
        db_url, tmp_path, fake, caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    async with open_store(db_url, tmp_path, fake, clock=clock, retries=0, max_attempts=3) as (app, notifier, gateway):
        order = await app.shop.reserve(Buyer(CHANNEL, "u3"), (await app.shop.product_by_sku(SKU)).id, 1, "en")
        fake.faults["/api/buy"] = ["500"] * 3
        await pay(app, order)
        await settle(app)
        assert await order_status(app, order.id) == "pending" and gateway.refunds == []
        [row] = await supply_rows(app)
        assert row.status == "retrying" and "HTTP 500" in row.detail
        for _ in range(2):  # the outbox tries again after its backoff, with the same request id
            clock.advance(hours=1)
            await settle(app)
        rid = "B" + order.id
        assert [p["request_id"] for path, p in fake.requests if path == "/api/buy"] == [rid] * 3
        assert fake.purchases == {}
        assert await order_status(app, order.id) == "refunded"
        [(payment, reason)] = gateway.refunds
        assert payment.order_id == order.id and reason == "supplier_failed"
        [told] = notifier.notices_to("u3", "refund.done")
        assert told.params == {"order": order.id, "reason": "supplier_failed"}
        [row] = await supply_rows(app)
        assert (row.status, row.cost) == ("failed", 0)


async def test_a_final_refusal_refunds_at_once_and_a_slow_purchase_is_waited_for(sqlite_url, tmp_path, fake):
    clock = FakeClock()
    async with open_store(sqlite_url, tmp_path, fake, clock=clock) as (app, notifier, gateway):
        pid = (await app.shop.product_by_sku(SKU)).id
        refused = await app.shop.reserve(Buyer(CHANNEL, "u4"), pid, 1, "en")
        fake.refuse["/api/buy"] = ["50001"]  # e.g. out of stock upstream: not worth asking again
        await pay(app, refused)
        await settle(app)
        assert await order_status(app, refused.id) == "refunded" and len(gateway.refunds) == 1
        assert notifier.notices_to("u4", "refund.done")

        slow = await app.shop.reserve(Buyer(CHANNEL, "u5"), pid, 1, "en")
        fake.buy_status = "processing"  # the supplier takes the order but the codes come later
        await pay(app, slow)
        await settle(app)
        assert await order_status(app, slow.id) == "pending"
        fake.finish("B" + slow.id, "success")
        clock.advance(minutes=5)
        await settle(app)
        assert await order_status(app, slow.id) == "delivered"
        assert notifier.delivered_to("u5")[0].codes == fake.orders["B" + slow.id].codes
        assert fake.purchases == {"B" + slow.id: 1}  # the refused one was never bought


async def test_a_product_whose_supplier_is_not_configured_is_not_sold(sqlite_url, tmp_path, fake):
    async with open_store(sqlite_url, tmp_path, fake) as (app, _, _):
        app.shop.attach_suppliers({})
        app.shop.catalog_changed()
        flow, ctx = flow_for(app), Ctx(Buyer(CHANNEL, "u6"), "u6", "en")
        pid = (await app.shop.product_by_sku(SKU)).id
        [page] = await flow.on_action(ctx, f"p:{pid}")
        assert "Sold out" in page.body or "sold out" in page.body.lower()
        screens = await flow.on_action(ctx, f"buy:{pid}:1")
        assert screens[0].error == "product_unavailable"


async def test_codes_bought_upstream_never_reach_the_log_or_the_outbox(sqlite_url, tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG)
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, _):
        order = await app.shop.reserve(Buyer(CHANNEL, "u7"), (await app.shop.product_by_sku(SKU)).id, 3, "en")
        fake.faults["/api/buy"] = ["lose"]
        await pay(app, order)
        await settle(app)
        codes = notifier.codes()
        assert len(codes) == 3
        async with app.db.uow() as uow:
            rows = (await uow.supplies.c.execute(select(t.outbox))).all()
        dump = repr(rows) + caplog.text
        assert not any(c in dump for c in codes)


async def test_the_merchant_sees_where_a_product_comes_from_its_cost_and_margin(sqlite_url, tmp_path, fake):
    catalog = [*CATALOG, {"sku": "NO-COST", "title": "x", "price": 500, "kind": "supplier", "supplier": "up",
                          "supplier_sku": "SUP-X"}]
    async with open_store(sqlite_url, tmp_path, fake, catalog=catalog) as (app, _, _):
        flow = AdminFlow(app.shop, Translator())
        [en] = await flow.on_command(AdminCtx(Merchant("test", "m1"), "en"), f"/product {SKU}")
        assert "Supplier: up, SKU SUP-GAME-10, cost CN¥8.50, margin CN¥1.50" in en.body
        [zh] = await flow.on_command(AdminCtx(Merchant("test", "m1"), "zh_CN"), f"/product {SKU}")
        assert "成本 ¥8.50,毛利 ¥1.50" in zh.body
        [no_cost] = await flow.on_command(AdminCtx(Merchant("test", "m1"), "en"), "/product NO-COST")
        assert "(no cost set)" in no_cost.body


async def test_a_buy_row_handled_again_after_delivery_buys_nothing_more(sqlite_url, tmp_path, fake):
    """A crash after the codes were stored but before the outbox row was marked: the row comes back."""
    async with open_store(sqlite_url, tmp_path, fake) as (app, notifier, _):
        order = await app.shop.reserve(Buyer(CHANNEL, "u8"), (await app.shop.product_by_sku(SKU)).id, 1, "en")
        await pay(app, order)
        await settle(app)
        again = await app.shop.supply.handle(OutboxItem(1, "buy", CHANNEL, "u8", order.id, {}))
        assert again == (True, "", {})
        await settle(app)
        assert fake.purchases == {"B" + order.id: 1} and len(notifier.deliveries) == 1
