"""The B2B API over real HTTP: signed requests, replays, clock skew, rate limits, idempotent orders paid
from the wallet, and every response checked against the OpenAPI document the API serves."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator

from bots.b2b_api import B2BApi
from bots.http import HttpServer
from core.admin import AdminService
from core.aftersales import RecallDesk
from core.models import Buyer
from core.resellers import ResellerDesk
from core.signing import signed_headers
from core.supply import import_codes
from locales import Translator
from tests.helpers import SKU, import_n, open_shop, settle, stock_of

CATALOG = [
    {"sku": SKU, "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
    {"sku": "VIP-M", "title": "VIP month", "price": 3000, "kind": "reusable"},
    {"sku": "OFF", "title": "Off sale", "price": 100, "active": False},
]


@dataclass
class Client:
    """A reseller's system: signs every request like the README says."""

    base: str
    key_id: str
    secret: str
    http: aiohttp.ClientSession
    server: Any = None
    doc: dict[str, Any] | None = None
    seen: set[tuple[str, str, int]] | None = None

    async def call(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                   timestamp: int | None = None, nonce: str | None = None, secret: str | None = None,
                   raw: bytes | None = None) -> tuple[int, Any, Any]:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        extra = dict(headers or {})
        h = signed_headers(self.key_id, secret or self.secret, method, path, data, timestamp=timestamp, nonce=nonce,
                           idempotency_key=extra.pop("Idempotency-Key", None))
        h.update(extra)
        if data:
            h["Content-Type"] = "application/json"
        async with self.http.request(method, self.base + path, data=data, headers=h) as resp:
            payload = await resp.json()
            if self.doc is not None:
                check_against_document(self.doc, method, path, resp.status, payload)
                assert self.seen is not None
                self.seen.add((method.lower(), template_of(path), resp.status))
            return resp.status, payload, resp.headers


def template_of(path: str) -> str:
    path = path.split("?")[0]
    return "/api/v1/orders/{order_id}" if path.startswith("/api/v1/orders/") else path


def check_against_document(doc: dict[str, Any], method: str, path: str, status: int, payload: Any) -> None:
    """The response's status is documented for the operation, and its body fits the documented schema."""
    op = doc["paths"][template_of(path)][method.lower()]
    assert str(status) in op["responses"], f"{method} {path}: {status} is not documented"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    Draft202012Validator({"components": doc["components"], **schema},
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(payload)


@asynccontextmanager
async def api_store(db_url: str, tmp_path: Path, *, codes: int = 50, balance: int = 10_000, rate: int = 50,
                    discount: int = 10) -> AsyncIterator[tuple[Any, ResellerDesk, Client]]:
    """A store with the B2B API on a real HTTP server, a reseller with a funded wallet and an API key."""
    async with open_shop(db_url, tmp_path, catalog=CATALOG) as (app, _, _):
        desk = app.resellers
        await app.shop.start()
        await import_n(app, codes)
        await import_codes(app.db.uow, app.vault, app.clock, "VIP-M", [b"VIP-SHARED-1\n"])
        r = await desk.create("Acme", discount_percent=discount)
        if balance:
            await desk.top_up(r.id, balance, actor="merchant")
        key_id, secret = await desk.create_api_key(r.id, rate_per_second=rate)
        server = HttpServer("127.0.0.1", 0)
        server.add_b2b_api(B2BApi(desk, Translator(("en", "zh_CN"))))
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield app, desk, Client(f"http://127.0.0.1:{server.port}", key_id, secret, http, server)
        finally:
            await server.stop()


async def test_a_signed_order_is_paid_from_the_wallet_and_its_codes_come_back(db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path, balance=20_000) as (app, desk, api):
        status, body, _ = await api.call("GET", "/api/v1/products")
        assert status == 200
        card = next(p for p in body["products"] if p["sku"] == SKU)
        assert (card["price"], card["list_price"], card["available"]) == (900, 1000, 50)
        assert "OFF" not in {p["sku"] for p in body["products"]}
        # when the reseller orders 12 codes (bulk: more than a chat buyer's max_qty)
        status, body, headers = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 12},
                                               headers={"Idempotency-Key": "po-1"})
        assert status == 201 and headers["Idempotent-Replayed"] == "false"
        order = body["order"]
        assert (order["qty"], order["unit_price"], order["amount"], order["status"]) == (12, 900, 10_800, "delivered")
        assert len(set(order["codes"])) == 12
        status, got, _ = await api.call("GET", f"/api/v1/orders/{order['id']}")
        assert status == 200 and got["order"]["codes"] == order["codes"]
        status, bal, _ = await api.call("GET", "/api/v1/balance")
        assert status == 200 and bal == {"balance": 9_200, "credit_limit": 0, "available": 9_200, "currency": "CNY"}
        assert await desk.ledger_sum(1) == 9_200
        assert await stock_of(app) == (38, 0, 12)


async def test_the_store_refuses_what_is_not_signed_right(db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path) as (app, desk, api):
        # bad signature: signed with another secret
        status, body, _ = await api.call("GET", "/api/v1/balance", secret="not-the-secret")
        assert (status, body["error"]["code"]) == (401, "bad_signature")
        # a body changed after signing
        h = signed_headers(api.key_id, api.secret, "POST", "/api/v1/orders", b'{"sku": "CARD-10", "qty": 1}')
        async with api.http.post(api.base + "/api/v1/orders", data=b'{"sku": "CARD-10", "qty": 9}',
                                 headers={**h, "Idempotency-Key": "x"}) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (401, "bad_signature")
        # stale and future timestamps
        for skew in (-301, 301):
            status, body, _ = await api.call("GET", "/api/v1/balance", timestamp=int(time.time()) + skew)
            assert (status, body["error"]["code"]) == (401, "stale_timestamp")
        # a replayed nonce: the first request passes, the same nonce again is refused
        status, _, _ = await api.call("GET", "/api/v1/balance", nonce="nonce-once-0001")
        assert status == 200
        status, body, _ = await api.call("GET", "/api/v1/balance", nonce="nonce-once-0001")
        assert (status, body["error"]["code"]) == (401, "replayed_nonce")
        # no headers, an unknown key, a revoked key
        async with api.http.get(api.base + "/api/v1/balance") as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (401, "missing_auth")
        stranger = Client(api.base, "rk_nobody", api.secret, api.http)
        assert (await stranger.call("GET", "/api/v1/balance"))[1]["error"]["code"] == "unknown_key"
        await desk.revoke_api_key(api.key_id)
        assert (await api.call("GET", "/api/v1/balance"))[1]["error"]["code"] == "unknown_key"
        # nothing was bought by any of it
        assert await stock_of(app) == (50, 0, 0)
        assert (await desk.get(1)).balance == 10_000


async def test_an_idempotency_key_changed_or_stripped_after_signing_is_refused_and_buys_nothing(
        db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path) as (app, desk, api):
        body = json.dumps({"sku": SKU, "qty": 2}).encode()
        url, json_type = api.base + "/api/v1/orders", {"Content-Type": "application/json"}
        # given a reseller's signed order with the Idempotency-Key po-7
        signed = signed_headers(api.key_id, api.secret, "POST", "/api/v1/orders", body, idempotency_key="po-7")
        # when someone on the way changes the key (to make a second order of the same body) or strips it
        changed = {**signed, "Idempotency-Key": "po-8"}
        stripped = {k: v for k, v in signed.items() if k != "Idempotency-Key"}
        for headers in (changed, stripped):
            async with api.http.post(url, data=body, headers={**headers, **json_type}) as resp:
                # then the store refuses it as not signed right, and nothing is bought
                assert (resp.status, (await resp.json())["error"]["code"]) == (401, "bad_signature")
        assert await stock_of(app) == (50, 0, 0) and (await desk.get(1)).balance == 10_000
        # the request exactly as signed goes through (its nonce was not used up by the forgeries)
        async with api.http.post(url, data=body, headers={**signed, **json_type}) as resp:
            assert resp.status == 201
        # and a client that signs the five lines without the key is refused everywhere, not only for orders
        ts, nonce = str(int(time.time())), "old-style-client-1"
        text = "\n".join(["GET", "/api/v1/balance", ts, nonce, hashlib.sha256(b"").hexdigest()])
        old = {"X-Api-Key": api.key_id, "X-Timestamp": ts, "X-Nonce": nonce,
               "X-Signature": hmac.new(api.secret.encode(), text.encode(), hashlib.sha256).hexdigest()}
        async with api.http.get(api.base + "/api/v1/balance", headers=old) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (401, "bad_signature")


async def test_an_idempotent_retry_returns_the_same_order_and_debits_once(db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path) as (app, desk, api):
        make = {"sku": SKU, "qty": 3}
        first = await api.call("POST", "/api/v1/orders", make, headers={"Idempotency-Key": "retry-me"})
        retries = await asyncio.gather(*[api.call("POST", "/api/v1/orders", make,
                                                  headers={"Idempotency-Key": "retry-me"}) for _ in range(5)])
        assert first[0] == 201 and {r[0] for r in retries} == {200}
        assert {r[1]["order"]["id"] for r in retries} == {first[1]["order"]["id"]}
        assert all(r[1] == first[1] and r[2]["Idempotent-Replayed"] == "true" for r in retries)
        r = await desk.get(1)
        assert r.balance == 10_000 - 2_700 == await desk.ledger_sum(1)
        assert [e.kind for e in await desk.statement(1)] == ["debit", "topup"]
        # the same key for another order is refused
        status, body, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 4},
                                         headers={"Idempotency-Key": "retry-me"})
        assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
        status, body, _ = await api.call("POST", "/api/v1/orders", make)
        assert (status, body["error"]["code"]) == (400, "idempotency_key_required")
        assert await stock_of(app) == (47, 0, 3)


async def test_insufficient_balance_is_a_clear_error_and_nothing_is_held_or_debited(db_url: str,
                                                                                     tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path, balance=2_000) as (app, desk, api):
        status, body, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 3},
                                         headers={"Idempotency-Key": "too-much", "Accept-Language": "zh-CN"})
        assert (status, body["error"]["code"]) == (402, "insufficient_funds")
        assert body["error"]["details"] == {"needed": 2700, "available": 2000}
        assert "钱包余额不足" in body["error"]["message"]
        assert await stock_of(app) == (50, 0, 0)
        assert (await desk.get(1)).balance == 2_000 == await desk.ledger_sum(1)
        # the key was not used up: once topped up, the same key makes the order
        await desk.top_up(1, 1_000, actor="merchant")
        status, body, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 3},
                                         headers={"Idempotency-Key": "too-much"})
        assert status == 201 and (await desk.get(1)).balance == 300


async def test_over_the_rate_limit_the_key_gets_429(db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path, rate=5) as (app, desk, api):
        answers = await asyncio.gather(*[api.call("GET", "/api/v1/balance") for _ in range(12)])
        statuses = [a[0] for a in answers]
        assert statuses.count(200) == 5 and statuses.count(429) == 7
        limited = next(a for a in answers if a[0] == 429)
        assert limited[1]["error"]["code"] == "rate_limited" and limited[2]["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        assert (await api.call("GET", "/api/v1/balance"))[0] == 200


async def test_wallet_races_over_http_never_overspend(db_url: str, tmp_path: Path) -> None:
    """40 concurrent orders of 2 codes (18.00 each) against 100.00: exactly 5 are made."""
    async with api_store(db_url, tmp_path, rate=1000) as (app, desk, api):
        answers = await asyncio.gather(*[api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 2},
                                                  headers={"Idempotency-Key": f"race-{i}"}) for i in range(40)])
        made = [a for a in answers if a[0] == 201]
        assert len(made) == 5
        assert {a[1]["error"]["code"] for a in answers if a[0] != 201} == {"insufficient_funds"}
        r = await desk.get(1)
        assert r.balance == 10_000 - 5 * 1_800 == await desk.ledger_sum(1)
        codes = [c for a in made for c in a[1]["order"]["codes"]]
        assert len(set(codes)) == 10
        assert await stock_of(app) == (40, 0, 10)


async def test_a_refund_credits_the_wallet_and_the_order_shows_it(db_url: str, tmp_path: Path) -> None:
    async with api_store(db_url, tmp_path) as (app, desk, api):
        _, body, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 2}, headers={"Idempotency-Key": "r"})
        oid = body["order"]["id"]
        await AdminService(app.shop).refund(Buyer("test", "boss"), oid)
        await settle(app)
        status, got, _ = await api.call("GET", f"/api/v1/orders/{oid}")
        assert (status, got["order"]["status"], got["order"]["codes"]) == (200, "refunded", [])
        _, bal, _ = await api.call("GET", "/api/v1/balance")
        assert bal["balance"] == 10_000 == await desk.ledger_sum(1)
        _, st, _ = await api.call("GET", "/api/v1/statement?limit=2")
        assert [e["kind"] for e in st["entries"]] == ["refund", "debit"] and st["next_before"] is not None


async def test_every_response_matches_the_openapi_document(sqlite_url: str, tmp_path: Path) -> None:
    """Each documented operation is called with good and bad input; each answer's status is documented for it and
    its body fits the documented schema; the served routes are exactly the documented ones."""
    async with api_store(sqlite_url, tmp_path, balance=5_000, rate=1000) as (app, desk, api):
        async with api.http.get(api.base + "/api/v1/openapi.json") as resp:
            assert resp.status == 200
            doc = await resp.json()
        Draft202012Validator.check_schema({"components": doc["components"]})
        api.doc, api.seen = doc, set()
        served = {(r.method.lower(), r.resource.canonical) for r in api.server.app.router.routes()
                  if r.method != "HEAD"}
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert served == documented

        await api.call("GET", "/api/v1/products")
        await api.call("GET", "/api/v1/balance")
        await api.call("GET", "/api/v1/statement")
        await api.call("GET", "/api/v1/statement?limit=0")
        await api.call("GET", "/api/v1/statement?before=x")
        _, made, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 2}, headers={"Idempotency-Key": "a"})
        await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 2}, headers={"Idempotency-Key": "a"})
        await api.call("POST", "/api/v1/orders", {"sku": "VIP-M"}, headers={"Idempotency-Key": "vip"})
        for body, key in [({"sku": SKU, "qty": 3}, "a"), ({"sku": SKU}, ""), ({"sku": "NOPE", "qty": 1}, "b"),
                          ({"sku": SKU, "qty": 0}, "c"), ({"sku": SKU, "qty": 1001}, "c2"),
                          ({"sku": "VIP-M", "qty": 2}, "d"), ({"sku": "OFF", "qty": 1}, "e"),
                          ({"sku": SKU, "qty": 49}, "f"), ({"sku": SKU, "qty": 40}, "g"), ({"qty": 1}, "h"),
                          ({"sku": SKU, "qty": "2"}, "i"), ([1, 2], "j"), ({"sku": SKU, "extra": 1}, "k")]:
            await api.call("POST", "/api/v1/orders", body, headers={"Idempotency-Key": key} if key else None)
        await api.call("POST", "/api/v1/orders", raw=b"{not json", headers={"Idempotency-Key": "l"})
        await api.call("POST", "/api/v1/orders", raw=b"x" * (64 * 1024 + 1), headers={"Idempotency-Key": "m"})
        await api.call("GET", f"/api/v1/orders/{made['order']['id']}")
        await api.call("GET", "/api/v1/orders/260101AAAAAAAA")
        await api.call("GET", "/api/v1/balance", secret="wrong")
        await api.call("GET", "/api/v1/balance", timestamp=0)
        assert (await api.call("GET", "/api/v1/products", nonce="short"))[1]["error"]["code"] == "bad_request"
        await api.call("GET", "/api/v1/balance", nonce="same-nonce-42")
        await api.call("GET", "/api/v1/balance", nonce="same-nonce-42")
        await desk.update(1, status="suspended")
        await asyncio.sleep(0)
        desk.api_keys.forget()  # the key cache (5 s) would show the suspension a little later
        await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 1}, headers={"Idempotency-Key": "s"})
        codes = {c for (_, _, c) in api.seen}
        assert {200, 201, 400, 401, 402, 403, 404, 409, 413} <= codes



async def test_a_recalled_code_of_an_api_order_is_replaced_and_the_next_read_shows_it(sqlite_url: str,
                                                                                     tmp_path: Path) -> None:
    async with api_store(sqlite_url, tmp_path, codes=10) as (app, desk, api):
        _, body, _ = await api.call("POST", "/api/v1/orders", {"sku": SKU, "qty": 2}, headers={"Idempotency-Key": "z"})
        recalled, kept = body["order"]["codes"]
        # the supplier recalls one of the two codes: the store burns it and reissues one from the pool
        report = await RecallDesk(app.db.uow, app.vault, app.clock).burn(SKU, [recalled.encode()])
        assert report.reissued == 1
        await settle(app)  # the `api` channel's outbox row goes through: nothing waits for a chat
        _, got, _ = await api.call("GET", f"/api/v1/orders/{body['order']['id']}")
        codes = got["order"]["codes"]
        assert kept in codes and recalled not in codes and len(codes) == 2
        assert (await desk.get(1)).balance == 10_000 - 1_800
