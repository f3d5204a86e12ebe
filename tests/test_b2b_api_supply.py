"""Supplier and top-up products over the B2B API: a reseller's API order for a `supplier` product is
bought upstream (the local fake card supplier) after the wallet pays, `pending` until then, and its codes come
back when it is done; a `topup` product takes the account in the request (checked against the product's
pattern), pending -> delivered, or failed -> refunded to the wallet. Every answer is checked against the OpenAPI
document the store serves."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bots.b2b_api import openapi_document
from tests.fake_supplier import FakeSupplier
from tests.helpers import settle
from tests.test_b2b_api import Client
from tests.test_store_supplier import Upstream, upstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeSupplier]:
    server = await FakeSupplier().start()
    yield server
    await server.stop()


async def client_for(up: Upstream, http: aiohttp.ClientSession) -> Client:
    return Client(up.base_url, up.key_id, up.secret, http, doc=openapi_document(), seen=set())


async def test_an_api_order_for_a_supplier_product_is_pending_then_done_with_the_codes(
        tmp_path: Path, fake: FakeSupplier) -> None:
    async with upstream(tmp_path, fake=fake) as up, aiohttp.ClientSession() as http:
        api = await client_for(up, http)
        _, listing, _ = await api.call("GET", "/api/v1/products")
        by_sku = {p["sku"]: p for p in listing["products"]}
        assert (by_sku["B-GAME"]["kind"], by_sku["B-GAME"]["available"], by_sku["B-GAME"]["price"]) == \
            ("supplier", None, 900)
        assert (by_sku["B-CM-30"]["kind"], by_sku["B-CM-30"]["max_qty"]) == ("topup", 1)

        status, made, _ = await api.call("POST", "/api/v1/orders", {"sku": "B-GAME", "qty": 2},
                                         headers={"Idempotency-Key": "sup-1"})
        order = made["order"]
        assert status == 201 and (order["status"], order["codes"], order["amount"]) == ("pending", [], 1_800)
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 - 1_800
        await settle(up.app)  # the store buys upstream with the order's request id (its dispatcher runs too)
        bought = fake.orders["B" + order["id"]].codes
        assert fake.purchases == {"B" + order["id"]: 1} and len(bought) == 2
        _, done, _ = await api.call("GET", f"/api/v1/orders/{order['id']}")
        assert (done["order"]["status"], done["order"]["codes"]) == ("delivered", bought)
        _, by_key, _ = await api.call("GET", "/api/v1/orders?idempotency_key=sup-1")
        assert by_key["order"]["codes"] == bought
        status, retried, headers = await api.call("POST", "/api/v1/orders", {"sku": "B-GAME", "qty": 2},
                                                  headers={"Idempotency-Key": "sup-1"})
        assert status == 200 and headers["Idempotent-Replayed"] == "true" and retried["order"]["codes"] == bought
        assert fake.purchases == {"B" + order["id"]: 1}
        assert await up.desk.ledger_sum(up.reseller_id) == 100_000 - 1_800
        status, missing, _ = await api.call("GET", "/api/v1/orders?idempotency_key=never-used")
        assert (status, missing["error"]["code"]) == (404, "not_found")


async def test_an_api_top_up_checks_the_account_and_a_failure_refunds_the_wallet(
        tmp_path: Path, fake: FakeSupplier) -> None:
    async with upstream(tmp_path, fake=fake) as up, aiohttp.ClientSession() as http:
        api = await client_for(up, http)
        for body, code in [({"sku": "B-CM-30", "account": "12345"}, "bad_account"),
                           ({"sku": "B-CM-30"}, "bad_account"),
                           ({"sku": "B-CM-30", "account": "13800138000", "qty": 2}, "bad_quantity"),
                           ({"sku": "B-CM-30", "account": 13800138000}, "bad_request"),
                           ({"sku": "B-GAME", "account": "13800138000"}, "bad_request")]:
            status, refused, _ = await api.call("POST", "/api/v1/orders", body, headers={"Idempotency-Key": "bad"})
            assert (status, refused["error"]["code"]) == (400, code), body
        _, zh, _ = await api.call("POST", "/api/v1/orders", {"sku": "B-CM-30", "account": "1"},
                                  headers={"Idempotency-Key": "bad", "Accept-Language": "zh-CN"})
        assert zh["error"]["message"] == "充值账号不符合该商品要求(请检查手机号或游戏 ID)。"
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 and fake.requests == []

        # one that the supplier does, one that it fails
        ids = {}
        for key, account in [("t-ok", "138 0013 8000"), ("t-fail", "13900139000")]:
            status, made, _ = await api.call("POST", "/api/v1/orders", {"sku": "B-CM-30", "account": account},
                                             headers={"Idempotency-Key": key})
            assert status == 201 and made["order"]["status"] == "pending" and made["order"]["codes"] == []
            ids[key] = made["order"]["id"]
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 - 2 * 2_700
        await settle(up.app)
        assert fake.orders["T" + ids["t-ok"]].account == "13800138000"
        fake.finish("T" + ids["t-ok"], "success")
        fake.finish("T" + ids["t-fail"], "failed")
        assert await up.app.shop.supply.poll_topups() == 2
        await settle(up.app)
        _, ok, _ = await api.call("GET", "/api/v1/orders?idempotency_key=t-ok")
        assert (ok["order"]["status"], ok["order"]["account"], ok["order"]["codes"]) == \
            ("delivered", "13800138000", [])
        _, failed, _ = await api.call("GET", f"/api/v1/orders/{ids['t-fail']}")
        assert failed["order"]["status"] == "refunded"
        assert (await up.desk.get(up.reseller_id)).balance == 100_000 - 2_700  # the failed one credited back
        assert await up.desk.ledger_sum(up.reseller_id) == 100_000 - 2_700
        _, st, _ = await api.call("GET", "/api/v1/statement")
        assert [e["kind"] for e in st["entries"]][:1] == ["refund"]
        assert {s for (_, _, s) in api.seen} >= {200, 201, 400}
