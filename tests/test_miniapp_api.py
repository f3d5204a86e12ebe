"""The Mini App's API (`/app/api/`, bots/miniapp/) over real HTTP on the store's server, SQLite and PostgreSQL: a
request with initData signed by the bot's token sees the catalogue in the buyer's language with Stars prices and
stock; missing, forged, other-bot or stale initData gets 401 and no catalogue; unknown things are 404 as JSON."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from app import App
from bots.http import HttpServer
from bots.miniapp import mount_miniapp
from config.settings import parse_settings
from core.models import Buyer
from tests.dbtemplate import from_template
from tests.helpers import import_n, product_id

TOKEN = "123456:MINIAPP-test-token"
CATALOG: list[dict[str, Any]] = [
    {"sku": "CARD10", "title": {"en": "Game card 10", "zh_CN": "游戏点卡 10"}, "price": 1000, "stars": 70,
     "kind": "code", "max_qty": 5, "category": {"en": "Games", "zh_CN": "游戏"},
     "description": {"en": "Ten credits", "zh_CN": "十点"}},
    {"sku": "STREAM", "title": {"en": "Streaming month", "zh_CN": "视频月卡"}, "price": 3000, "stars": 200,
     "kind": "code", "category": {"en": "Video", "zh_CN": "视频"}},
    {"sku": "OLD", "title": "Retired card", "price": 500, "stars": 30, "kind": "code", "active": False},
]


def signed(user: dict[str, Any] | None = None, *, token: str = TOKEN, age: float = 0) -> str:
    """initData as Telegram signs it (its documented algorithm, written out here)."""
    fields = {"auth_date": str(int(time.time() - age)), "query_id": "AAHq",
              "user": json.dumps(user or {"id": 4242, "first_name": "Li", "language_code": "en"})}
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    dcs = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return urlencode({**fields, "hash": hmac.new(secret, dcs.encode(), hashlib.sha256).hexdigest()})


class Kit:
    def __init__(self, app: App, base: str, http: aiohttp.ClientSession) -> None:
        self.app, self.base, self.http = app, base, http

    async def get(self, path: str, init: str | None = None, *, header: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": header if header is not None else f"tma {init or signed()}"}
        async with self.http.get(self.base + path, headers=headers) as r:
            assert r.content_type == "application/json", await r.text()
            assert r.headers["Cache-Control"] == "no-store"
            return r.status, await r.json()


@asynccontextmanager
async def open_miniapp(url: str, tmp_path: Path) -> AsyncIterator[Kit]:
    settings = parse_settings({
        "database": {"url": from_template(url)}, "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": CATALOG, "telegram": {"token": TOKEN}, "server": {"public_url": "https://shop.example"},
    }, tmp_path, env={})
    app = await App.open(settings)
    server = HttpServer("127.0.0.1", 0)
    try:
        mount_miniapp(server, app)
        await server.start()
        async with aiohttp.ClientSession() as http:
            yield Kit(app, f"http://127.0.0.1:{server.port}/app/api", http)
    finally:
        await server.stop()
        await app.close()


async def test_the_catalogue_in_the_buyers_language_with_stars_and_stock(db_url: str, tmp_path: Path) -> None:
    async with open_miniapp(db_url, tmp_path) as kit:
        await import_n(kit.app, 3, "CARD10")
        status, body = await kit.get("/catalog")
        assert status == 200, body
        assert body["language"] == "en"
        assert [c["name"] for c in body["categories"]] == ["Games", "Video"]
        items = {p["sku"]: p for p in body["products"]}
        assert set(items) == {"CARD10", "STREAM"}  # the retired product is not on sale
        assert (items["CARD10"]["title"], items["CARD10"]["stars"], items["CARD10"]["available"],
                items["CARD10"]["in_stock"], items["CARD10"]["low"]) == ("Game card 10", 70, 3, True, True)
        assert (items["STREAM"]["available"], items["STREAM"]["in_stock"]) == (0, False)
        assert "code" not in json.dumps(body).lower().replace("language_code", "")  # no code ever travels here

        zh = signed({"id": 4343, "first_name": "Li", "language_code": "zh-hans"})  # a new buyer, app in Chinese
        status, body = await kit.get("/catalog", zh)
        assert (status, body["language"]) == (200, "zh_CN")
        assert [c["name"] for c in body["categories"]] == ["游戏", "视频"]
        assert {p["title"] for p in body["products"]} == {"游戏点卡 10", "视频月卡"}

        games = body["categories"][0]["key"]
        status, body = await kit.get(f"/catalog?category={games}", zh)
        assert [p["sku"] for p in body["products"]] == ["CARD10"]
        status, body = await kit.get("/catalog?category=nope")
        assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_language_chosen_in_the_chat_shows_on_the_page(db_url: str, tmp_path: Path) -> None:
    async with open_miniapp(db_url, tmp_path) as kit:
        assert (await kit.get("/me"))[1]["language"] == "en"
        buyer, shop = Buyer("telegram", "4242"), kit.app.shop
        chosen = await shop.customer(buyer)  # /language in the chat, in this process: the next request has it
        chosen.language = "zh_CN"
        await shop.save_customer(chosen)
        assert (await kit.get("/me"))[1]["language"] == "zh_CN"

        async with kit.app.db.uow(write=True) as uow:  # another process's chat switches back to English
            other = await uow.customers.get(buyer)
            assert other is not None
            other.language = "en"
            await uow.customers.save(other)
            await uow.commit()
        shop.customer_ttl = 0  # what this process remembers is old: read again, behind the requests
        assert (await kit.get("/me"))[1]["language"] == "zh_CN"  # no request waits for that read
        for _ in range(100):
            if (await kit.get("/me"))[1]["language"] == "en":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the other process's choice never showed")


async def test_search_and_one_product(db_url: str, tmp_path: Path) -> None:
    async with open_miniapp(db_url, tmp_path) as kit:
        await import_n(kit.app, 1, "CARD10")
        status, body = await kit.get("/search?q=STREAMING")
        assert (status, [p["sku"] for p in body["products"]]) == (200, ["STREAM"])
        status, body = await kit.get("/search?q=点卡")  # any language's words match
        assert [p["sku"] for p in body["products"]] == ["CARD10"]
        status, body = await kit.get("/search?q=retired")
        assert (status, body["products"]) == (200, [])
        for bad in ("/search", "/search?q=%20", "/search?q=" + "x" * 101):
            status, body = await kit.get(bad)
            assert (status, body["error"]["code"]) == (400, "bad_request"), bad

        pid = await product_id(kit.app, "CARD10")
        zh = signed({"id": 7, "language_code": "zh-hans"})
        status, body = await kit.get(f"/products/{pid}", zh)
        assert status == 200
        p = body["product"]
        assert (p["title"], p["description"], p["stars"], p["available"], p["max_qty"]) == (
            "游戏点卡 10", "十点", 70, 1, 5)


async def test_unknown_or_retired_products_are_404(db_url: str, tmp_path: Path) -> None:
    async with open_miniapp(db_url, tmp_path) as kit:
        retired = await product_id(kit.app, "OLD")
        for path in ("/products/999999", f"/products/{retired}", "/products/abc", "/products/-1", "/nothing"):
            status, body = await kit.get(path)
            assert (status, body["error"]["code"]) == (404, "not_found"), path
        async with kit.http.post(kit.base + "/catalog", headers={"Authorization": f"tma {signed()}"}) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (405, "method_not_allowed")


async def test_requests_without_good_init_data_are_401_with_nothing_shown(sqlite_url: str, tmp_path: Path) -> None:
    async with open_miniapp(sqlite_url, tmp_path) as kit:
        pid = await product_id(kit.app, "CARD10")
        good = signed()
        forged = good[: good.index("hash=") + 5] + "0" * 64
        no_user = {"auth_date": str(int(time.time()))}
        secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
        no_user["hash"] = hmac.new(secret, f"auth_date={no_user['auth_date']}".encode(), hashlib.sha256).hexdigest()
        cases = [  # (Authorization header, the reason given)
            ("", "missing"),
            ("tma ", "missing"),
            (f"Bearer {good}", "missing"),  # another scheme is not initData
            (f"tma {forged}", "bad_hash"),
            (f"tma {good.replace('4242', '4243')}", "bad_hash"),  # a tampered user id
            (f"tma {signed(token='999999:another-bot')}", "bad_hash"),
            (f"tma {signed(age=3601)}", "expired"),  # telegram.webapp.max_age_seconds: 3600
            (f"tma {good}&auth_date=1", "duplicate_key"),
            (f"tma {urlencode(no_user)}", "no_user"),
        ]
        for header, reason in cases:
            for path in ("/catalog", f"/products/{pid}", "/search?q=card", "/nothing"):
                status, body = await kit.get(path, header=header)
                assert (status, body) == (401, {"error": {"code": "unauthorized", "reason": reason}}), (header, path)
        async with kit.http.post(kit.base + "/catalog") as r:  # no initData: 401 before anything else
            assert r.status == 401
        status, _ = await kit.get("/catalog", signed(age=3500))  # within telegram.webapp.max_age_seconds
        assert status == 200
