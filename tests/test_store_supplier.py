"""The `store` supplier (suppliers/store.py): store A buys from store B through B's signed B2B API. Two whole
stores in one test: B is a real App with its B2B API on a local port (and, for supplier and top-up products of
its own, the local fake card supplier behind it); A is a real App whose `supplier`, `topup` and restocked `code`
products come from B. Store A runs on SQLite and PostgreSQL, store B on SQLite."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from app import App
from bots.b2b_api import B2BApi
from bots.http import HttpServer
from config.settings import parse_settings
from core.errors import SupplierError
from core.models import Buyer
from core.resellers import ResellerDesk
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from storage import tables as t
from tests.fake_supplier import FakeSupplier
from tests.helpers import (
    CHANNEL,
    PROVIDER,
    RecordingGateway,
    RecordingNotifier,
    import_n,
    order_status,
    pay,
    settle,
    stock_of,
)

B_SKU = "CARD-10"  # a pool product at B
B_CATALOG = [
    {"sku": B_SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
    {"sku": "B-GAME", "title": "Game card (supplied)", "price": 1000, "kind": "supplier", "supplier": "up",
     "supplier_sku": "SUP-GAME-10", "cost": 850},
    {"sku": "B-CM-30", "title": "China Mobile 30", "price": 3000, "kind": "topup", "supplier": "up",
     "supplier_sku": "SUP-CM-30", "cost": 2940, "account_pattern": r"^1[3-9]\d{9}$"},
]
A_CATALOG = [
    {"sku": "A-GAME", "title": "Game card 10", "price": 1200, "stars": 80, "kind": "supplier", "supplier": "b",
     "supplier_sku": B_SKU, "cost": 900, "max_qty": 5},
    {"sku": "A-POOL", "title": "Game card 10 (stocked)", "price": 1200, "stars": 80, "kind": "code",
     "supplier": "b", "supplier_sku": B_SKU, "restock": {"below": 3, "up_to": 8, "daily_budget": 100_000}},
    {"sku": "A-CM-30", "title": "China Mobile 30", "price": 3200, "stars": 220, "kind": "topup", "supplier": "b",
     "supplier_sku": "B-CM-30", "account_pattern": r"^1[3-9]\d{9}$"},
]


@dataclass
class Upstream:
    app: Any
    desk: ResellerDesk
    reseller_id: int
    base_url: str
    key_id: str
    secret: str
    codes: list[str]
    proxy: SlowProxy


class SlowProxy:
    """Between A and B: passes requests through; `lose_next_order` makes B's answer to the next order arrive
    too late for A (B did the work: the answer is lost on the way)."""

    def __init__(self, target: str, delay: float = 1.5) -> None:
        self.target, self.delay = target, delay
        self.lose_next_order = False
        self.orders_seen = 0
        self.port = 0

    async def start(self) -> SlowProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        await self._http.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(request.method, self.target + request.raw_path, data=body or None,
                                      headers=headers) as resp:
            answer, status = await resp.read(), resp.status
            passed = {k: v for k, v in resp.headers.items()
                      if k.lower() not in ("content-length", "transfer-encoding", "content-type", "date", "server")}
        if request.method == "POST" and request.path.endswith("/orders"):
            self.orders_seen += 1
            if self.lose_next_order:
                self.lose_next_order = False
                await asyncio.sleep(self.delay)
        return web.Response(body=answer, status=status, content_type="application/json", headers=passed)


@asynccontextmanager
async def upstream(tmp_path: Path, *, codes: int = 20, balance: int = 100_000,
                   fake: FakeSupplier | None = None) -> AsyncIterator[Upstream]:
    """Store B: a pool of codes, a reseller account "Store A" with a funded wallet and an API key, and the B2B API
    on a real local HTTP server (behind a pass-through proxy)."""
    (tmp_path / "b").mkdir(exist_ok=True)
    catalog = B_CATALOG if fake is not None else B_CATALOG[:1]
    settings = parse_settings({"store": {"demo": False}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/b/b.db"},
                               "vault": {"key_file": str(tmp_path / "b" / "vault.key")},
                               "suppliers": {"up": fake.config()} if fake else {}, "catalog": catalog},
                              tmp_path / "b", env={})
    app = await App.open(settings, notifiers={CHANNEL: RecordingNotifier()}, gateways={PROVIDER: RecordingGateway()})
    server = HttpServer("127.0.0.1", 0)
    proxy: SlowProxy | None = None
    try:
        await app.shop.start()
        desk = app.shop.resellers
        pool = await import_n(app, codes, B_SKU, prefix="FROM-B") if codes else []
        r = await desk.create("Store A", discount_percent=10)
        await desk.top_up(r.id, balance, actor="merchant")
        key_id, secret = await desk.create_api_key(r.id, rate_per_second=100)
        server.add_b2b_api(B2BApi(desk, Translator(("en", "zh_CN"))))
        await server.start()
        proxy = await SlowProxy(f"http://127.0.0.1:{server.port}").start()
        yield Upstream(app, desk, r.id, f"http://127.0.0.1:{proxy.port}", key_id, secret, pool, proxy)
    finally:
        if proxy is not None:
            await proxy.stop()
        await server.stop()
        await app.close()


@asynccontextmanager
async def downstream(url: str, tmp_path: Path, up: Upstream, *, secret: str | None = None,
                     **conf: Any) -> AsyncIterator[tuple[App, RecordingNotifier, RecordingGateway]]:
    """Store A: its products come from store B (supplier type store)."""
    (tmp_path / "a").mkdir(parents=True, exist_ok=True)
    supplier = {"type": "store", "base_url": up.base_url, "key_id": up.key_id, "secret": secret or up.secret,
                "timeout": 0.5, "retries": 1, "backoff": 0, **conf}
    settings = parse_settings({"store": {"demo": False}, "database": {"url": url},
                               "vault": {"key_file": str(tmp_path / "a" / "vault.key")},
                               "suppliers": {"b": supplier}, "catalog": A_CATALOG}, tmp_path / "a", env={})
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    app = await App.open(settings, notifiers={CHANNEL: notifier}, gateways={PROVIDER: gateway})
    try:
        yield app, notifier, gateway
    finally:
        await app.close()


async def buy_at_a(app: App, who: str, sku: str = "A-GAME", qty: int = 1, account: str = "") -> Any:
    order = await app.shop.reserve(Buyer(CHANNEL, who), (await app.shop.product_by_sku(sku)).id, qty, "en",
                                   chat_id=who, account=account)
    result = await pay(app, order)
    assert result.outcome == "pending"
    return order


async def shown_again(app: App, who: str, order_id: str) -> list[str]:
    """The buyer's "show codes again" in My orders (read from the shop's vault)."""
    [screen] = await CustomerFlow(app.shop, Translator(), shop_name="A").on_action(
        Ctx(Buyer(CHANNEL, who), who, "en"), f"k:{order_id}")
    return list(screen.secrets)


async def b_orders(up: Upstream) -> list[Any]:
    """Store B's orders placed by store A's reseller account."""
    async with up.app.db.uow() as uow:
        rows = (await uow.supplies.c.execute(select(t.orders).where(t.orders.c.buyer_id == str(up.reseller_id))
                                             )).all()
    return list(rows)


async def test_a_buyer_of_store_a_gets_a_code_that_came_from_store_b(db_url: str, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with upstream(tmp_path) as up, downstream(db_url, tmp_path, up) as (a, notifier, gateway):
        order = await buy_at_a(a, "u1", qty=2)
        await settle(a)
        assert await order_status(a, order.id) == "delivered"
        [(to, delivery)] = notifier.deliveries
        assert to == "u1" and len(delivery.codes) == 2 and set(delivery.codes) <= set(up.codes)
        # B sold them to A's reseller account, paid from A's wallet at A's tier price (10 % off 10.00)
        [row] = await b_orders(up)
        assert (row.qty, row.amount, row.status) == (2, 1_800, "delivered")
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 - 1_800
        assert await stock_of(up.app, B_SKU) == (18, 0, 2)
        # A keeps them in its own vault: "show codes again" works, and no code is in A's log
        assert await shown_again(a, "u1", order.id) == delivery.codes
        assert not any(c in caplog.text for c in up.codes)
        assert gateway.refunds == []


async def test_an_answer_lost_after_a_timeout_is_asked_again_and_store_b_sells_once(sqlite_url: str,
                                                                                     tmp_path: Path) -> None:
    async with upstream(tmp_path) as up, downstream(sqlite_url, tmp_path, up) as (a, notifier, _):
        up.proxy.lose_next_order = True  # B sells, A times out waiting for the answer, then asks again
        order = await buy_at_a(a, "u2", qty=3)
        await settle(a)
        assert up.proxy.orders_seen == 2  # the same Idempotency-Key twice
        [row] = await b_orders(up)
        assert row.qty == 3
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 - 2_700  # debited once
        assert await order_status(a, order.id) == "delivered"
        assert len(notifier.codes()) == 3 and set(notifier.codes()) <= set(up.codes)
        assert await stock_of(up.app, B_SKU) == (17, 0, 3)


async def test_a_wrong_secret_is_a_clear_error_and_the_buyer_is_refunded(sqlite_url: str, tmp_path: Path) -> None:
    async with upstream(tmp_path) as up, downstream(sqlite_url, tmp_path, up, secret="not-the-secret") as (
            a, notifier, gateway):
        with pytest.raises(SupplierError) as info:
            await a.shop.suppliers["b"].balance()
        assert info.value.code == "bad_signature" and not info.value.retryable
        assert "refused our API key (bad_signature)" in str(info.value) and "suppliers.b.key_id" in str(info.value)
        async with downstream(f"sqlite+aiosqlite:///{tmp_path}/x.db", tmp_path / "x", up,
                              base_url=up.base_url + "/not-the-api") as (x, _, _):
            with pytest.raises(SupplierError) as info:
                await x.shop.suppliers["b"].products()
            assert not info.value.retryable and "is suppliers.b.base_url the other store's server?" in str(info.value)
        order = await buy_at_a(a, "u3")
        await settle(a)
        assert await order_status(a, order.id) == "refunded"
        [(payment, reason)] = gateway.refunds
        assert payment.order_id == order.id and reason == "supplier_failed"
        assert notifier.notices_to("u3", "refund.done") and notifier.deliveries == []
        assert await b_orders(up) == [] and (await up.desk.get(up.reseller_id)).balance == 100_000


async def test_store_b_out_of_stock_refunds_store_a_s_buyer(db_url: str, tmp_path: Path) -> None:
    async with upstream(tmp_path, codes=1) as up, downstream(db_url, tmp_path, up) as (a, notifier, gateway):
        order = await buy_at_a(a, "u4", qty=2)  # B has one code
        await settle(a)
        assert await order_status(a, order.id) == "refunded"
        [(payment, reason)] = gateway.refunds
        assert payment.order_id == order.id and reason == "supplier_failed"
        [told] = notifier.notices_to("u4", "refund.done")
        assert told.params == {"order": order.id, "reason": "supplier_failed"}
        async with a.db.uow() as uow:
            req = await uow.supplies.get("B" + order.id)
        assert req is not None and req.status == "failed" and "sold_out" in req.detail
        assert await b_orders(up) == [] and (await up.desk.get(up.reseller_id)).balance == 100_000


async def test_the_restock_job_refills_store_a_s_pool_from_store_b(sqlite_url: str, tmp_path: Path) -> None:
    async with upstream(tmp_path) as up, downstream(sqlite_url, tmp_path, up) as (a, _, _):
        a.job_runner()
        assert a.shop.suppliers["b"] is not None
        result = await a.jobs.restock()
        assert "A-POOL" in result
        available, _, _ = await stock_of(a, "A-POOL")
        assert available == 8  # up_to, bought at A's tier price (listed by B's /products)
        [row] = await b_orders(up)
        assert (row.qty, row.unit_price) == (8, 900)
        assert await stock_of(up.app, B_SKU) == (12, 0, 8)
        await a.jobs.restock()  # above the line now: nothing more is bought
        assert len(await b_orders(up)) == 1
        # what A bought can be sold by A: the codes decrypt and are B's
        order = await a.shop.reserve(Buyer(CHANNEL, "u5"), (await a.shop.product_by_sku("A-POOL")).id, 1, "en")
        await pay(a, order)
        await settle(a)
        codes = await shown_again(a, "u5", order.id)
        assert len(codes) == 1 and codes[0] in up.codes


async def test_a_top_up_at_store_a_is_done_by_store_b_and_its_supplier(sqlite_url: str, tmp_path: Path) -> None:
    """Three shops in a chain: A's top-up goes to B over the B2B API, B's goes to the fake card supplier; the
    supplier finishes it, B learns it by polling, and A by polling B."""
    fake = await FakeSupplier().start()
    try:
        async with upstream(tmp_path, fake=fake) as up, downstream(sqlite_url, tmp_path, up) as (a, notifier, _):
            order = await buy_at_a(a, "u6", sku="A-CM-30", account="138 0013 8000")
            await settle(a)
            assert await order_status(a, order.id) == "pending"
            [b_row] = await b_orders(up)
            assert (b_row.status, b_row.account) == ("pending", "13800138000")
            await settle(up.app)  # B asks its own supplier
            [(rid, upstream_order)] = list(fake.orders.items())
            assert upstream_order.kind == "topup"
            assert await a.shop.supply.poll_topups() == 0  # still pending at B
            fake.finish(rid, "success")
            assert await up.app.shop.supply.poll_topups() == 1
            assert await a.shop.supply.poll_topups() == 1
            await settle(a)
            assert await order_status(a, order.id) == "delivered"
            [done] = notifier.notices_to("u6", "topup.done")
            assert done.params["account"] == "13800138000"
            assert fake.purchases == {rid: 1}
    finally:
        await fake.stop()
