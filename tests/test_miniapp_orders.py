"""Buying in the Telegram Mini App over real HTTP (`/app/api/orders`, bots/miniapp/), against the real store polling
the fake Bot API (aiogram, and once python-telegram-bot), on SQLite and PostgreSQL: an order held by the core
pipeline gets an invoice link issued by `createInvoiceLink`; paying that link is the bot's own pre-checkout and
successful payment; the order reaches delivered, the chat gets the codes (protected), and the page may reveal them
(audited as the Mini App). Every malformed or refused request holds nothing."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.http import HttpServer
from bots.miniapp import mount_miniapp
from core.models import Buyer
from core.webapp_auth import sign_init_data
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import TOKEN, Shopfront

LIMITED = {"sku": "LIMITED", "title": {"en": "Gift card", "zh_CN": "礼品卡"}, "price": 200, "stars": 10,
           "max_qty": 5, "rules": {"per_buyer": 2}}
PUBLIC = "https://shop.example"


def init_data(user_id: int, language: str = "en", *, token: str = TOKEN, age: float = 0) -> str:
    user = json.dumps({"id": user_id, "first_name": "Ann", "language_code": language})
    return sign_init_data({"auth_date": str(int(time.time() - age)), "user": user}, token)


class Page:
    """What the Mini App page does: HTTP requests to /app/api/ with its initData."""

    def __init__(self, shop: Shopfront, base: str, http: aiohttp.ClientSession) -> None:
        self.shop, self.api, self.base, self.http = shop, shop.api, base, http

    async def call(self, method: str, path: str, user: int = 501, *, body: Any = None, raw: bytes | None = None,
                   auth: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": auth if auth is not None else f"tma {init_data(user)}"}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, self.base + path, data=data, headers=headers) as r:
            assert r.content_type == "application/json", await r.text()
            return r.status, await r.json()

    async def order(self, product: int, qty: int, user: int = 501, **more: Any) -> tuple[int, Any]:
        return await self.call("POST", "/orders", user, body={"product_id": product, "qty": qty, **more})

    async def pid(self, sku: str) -> int:
        p = await self.shop.app.shop.product_by_sku(sku)
        assert p is not None
        return p.id

    async def available(self, sku: str) -> int:
        status, body = await self.call("GET", f"/products/{await self.pid(sku)}", 9999)
        assert status == 200, body
        return body["product"]["available"]

    async def held_by(self, user: int) -> list[str]:
        return [o.id for o in await self.shop.app.shop.my_orders(Buyer("telegram", str(user)))]


@asynccontextmanager
async def mini_app(tmp_path: Path, db_url: str | None = None, *, library: str = "aiogram",
                   extra: dict[str, Any] | None = None, telegram: dict[str, Any] | None = None
                   ) -> AsyncIterator[Page]:
    """The store (App + the library's bot polling a fake Bot API) with the Mini App API on its HTTP server."""
    more: dict[str, Any] = {"server": {"public_url": PUBLIC}, "catalog": [LIMITED], **(extra or {})}
    if db_url is not None:
        more["database"] = {"url": db_url}
    async with FakeBotAPI(token=TOKEN) as api, Shopfront(api, tmp_path, library=library, extra=more,
                                                                 telegram=telegram) as shop:
        server = HttpServer("127.0.0.1", 0)
        mount_miniapp(server, shop.app, shop.runtime)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Page(shop, f"http://127.0.0.1:{server.port}/app/api", http)
        finally:
            await server.stop()


async def buy_and_pay(page: Page, user_id: int = 501) -> str:
    """The buy journey: order -> invoice link -> paid through the bot's updates -> delivered -> chat -> reveal."""
    codes = await page.shop.stock(3)
    api = page.api
    user = api.user(user_id, language_code="en")
    gid = await page.pid("GAME")

    status, body = await page.order(gid, 2, user_id)
    assert status == 201, body
    order, pay = body["order"], body["pay"]
    assert (order["status"], order["qty"], order["title"]) == ("held", 2, "Game card")
    assert order["amount"] == {"amount": 140, "currency": "XTR", "text": "⭐140"}
    assert pay["kind"] == "telegram_invoice" and pay["url"].startswith("https://t.me/$")
    invoice = api.invoice_of(pay["url"])  # the link the fake Bot API issued, for this order, in Stars
    assert (invoice["payload"], invoice["currency"], invoice["total_amount"]) == (order["id"], "XTR", 140)
    assert invoice["title"] == "Game card" and order["id"] in invoice["description"]
    assert await page.available("GAME") == 1  # held by the one pipeline

    mark = api.mark()
    pre, paid = api.pay_link_updates(user, pay["url"])
    await page.shop.send(pre)
    answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
    assert answer.params["ok"] is True
    await page.shop.send(paid)

    deadline = time.monotonic() + 10
    while True:  # the page polls its order until delivered
        status, body = await page.call("GET", f"/orders/{order['id']}", user_id)
        assert status == 200, body
        if body["order"]["status"] == "delivered" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert body["order"]["status"] == "delivered"

    sent = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == user_id and any(
        c_ in c.params["text"] for c_ in codes), since=mark)
    assert sent.params.get("protect_content") is True
    in_chat = [c for c in codes if c in sent.params["text"]]
    assert len(in_chat) == 2

    status, body = await page.call("POST", f"/orders/{order['id']}/reveal", user_id)
    assert status == 200, body
    assert sorted(body["codes"]) == sorted(in_chat)
    reveals = [e for e in await page.shop.app.shop.audit_for(order["id"]) if e.action == "reveal"]
    assert [e.detail["chat"] for e in reveals] == [f"miniapp:{user_id}"]
    return str(order["id"])


async def test_a_mini_app_purchase_is_paid_by_an_invoice_link_through_the_bot(db_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, db_url) as page:
        oid = await buy_and_pay(page)
        create = page.api.calls("createInvoiceLink")
        assert len(create) == 1 and "provider_token" not in create[0].params
        # reveals are limited like the chat's: ten an hour (one was made above)
        for _ in range(9):
            status, _ = await page.call("POST", f"/orders/{oid}/reveal", 501)
            assert status == 200
        status, answer = await page.call("POST", f"/orders/{oid}/reveal", 501)
        assert (status, answer["error"]["code"]) == (429, "rate_limited")
        status, _ = await page.call("POST", f"/orders/{oid}/cancel", 501)  # paid: nothing to cancel
        assert status == 409


async def test_the_same_purchase_on_python_telegram_bot(sqlite_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, sqlite_url, library="ptb") as page:
        await buy_and_pay(page, 502)


async def test_malformed_or_refused_orders_hold_nothing(db_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, db_url) as page:
        await page.shop.stock(3)
        gid, nostars, limited = await page.pid("GAME"), await page.pid("NOSTARS"), await page.pid("LIMITED")
        bad_bodies: list[tuple[Any, str]] = [
            ({"product_id": gid, "qty": 1, "price": 1}, "price"),  # the server decides prices
            ({"product_id": gid, "qty": 1, "total": 0}, "total"),
            ({"product_id": gid}, "qty"),
            ({"qty": 1}, "product_id"),
            ({"product_id": gid, "qty": "1"}, "qty"),
            ({"product_id": gid, "qty": True}, "qty"),
            ({"product_id": gid, "qty": 1.0}, "qty"),
            ({"product_id": gid, "qty": -1}, "qty"),
            ({"product_id": gid, "qty": 10 ** 30}, "qty"),
            ({"product_id": str(gid), "qty": 1}, "product_id"),
            ([gid, 1], "body"),
            ({"product_id": gid, "qty": 1, "challenge": "4"}, "challenge"),
            ({"product_id": gid, "qty": 1, "challenge": {"token": "t", "answer": "4", "x": 1}}, "challenge"),
        ]
        for body, field in bad_bodies:
            status, answer = await page.call("POST", "/orders", body=body)
            assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, "bad_request", field), body
            assert answer["error"]["message"] == "The request was not understood; nothing was ordered."
        for raw in (b"", b"not json", b'{"product_id": 1, "qty": 1', b"\xff\xfe",
                    json.dumps({"product_id": gid, "qty": 1, "pad": "x" * 5000}).encode()):
            status, answer = await page.call("POST", "/orders", raw=raw)
            assert (status, answer["error"]["code"]) == (400, "bad_request"), raw[:40]

        # Refusals of the pipeline, in the chat's words
        status, answer = await page.order(gid, 0)
        assert (status, answer["error"]["code"]) == (422, "bad_quantity")
        assert answer["error"]["message"] == "Choose a quantity from 1 to 3."
        status, answer = await page.order(gid, 4)  # over max_qty
        assert (status, answer["error"]["code"]) == (422, "bad_quantity")
        status, answer = await page.order(nostars, 1)  # no Stars price: not sold in Telegram
        assert (status, answer["error"]["code"]) == (409, "product_unavailable")
        assert answer["error"]["message"] == "This product is not on sale right now."
        status, answer = await page.order(999999, 1)
        assert (status, answer["error"]["code"]) == (404, "not_found")
        status, answer = await page.order(limited, 3)  # the product's per-buyer rule
        assert (status, answer["error"]["code"], answer["error"]["rule"]) == (422, "rule_refused", "per_buyer")
        assert answer["error"]["message"] == "Purchase limit: at most 2 per person (2 left for you)."

        # Credentials that are not this bot's, fresh initData: 401 before anything
        good = init_data(501)
        forged = good[: good.index("hash=") + 5] + "0" * 64
        for auth in ("", f"tma {forged}", f"tma {init_data(501, age=4000)}",
                     f"tma {init_data(501, token='999:other-bot')}"):
            status, answer = await page.call("POST", "/orders", body={"product_id": gid, "qty": 1}, auth=auth)
            assert (status, answer["error"]["code"]) == (401, "unauthorized"), auth[:20]

        assert await page.available("GAME") == 3 and await page.held_by(501) == []
        assert page.api.calls("createInvoiceLink") == []

        # the chat's language is the buyer's: a Chinese app gets Chinese refusals
        status, answer = await page.call("POST", "/orders", 777, body={"product_id": gid, "qty": 0},
                                         auth=f"tma {init_data(777, 'zh-hans')}")
        assert (status, answer["error"]["message"]) == (422, "请选择 1–3 之间的数量。")


async def test_orders_are_the_buyers_own_and_codes_wait_for_delivery(sqlite_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, sqlite_url) as page:
        await page.shop.stock(2)
        gid = await page.pid("GAME")
        status, body = await page.order(gid, 1, 501)
        assert status == 201, body
        oid = body["order"]["id"]
        status, again = await page.call("POST", f"/orders/{oid}/pay", 501)  # the page was closed before paying
        assert (status, again["order"]["id"]) == (200, oid)
        assert page.api.invoice_of(again["pay"]["url"])["payload"] == oid
        for method, path in (("GET", f"/orders/{oid}"), ("POST", f"/orders/{oid}/reveal"),
                             ("POST", f"/orders/{oid}/pay"),
                             ("POST", f"/orders/{oid}/cancel"), ("GET", "/orders/NOPE"), ("GET", "/orders/a.b")):
            status, answer = await page.call(method, path, 502)  # another buyer
            assert (status, answer["error"]["code"]) == (404, "not_found"), path
        status, answer = await page.call("POST", f"/orders/{oid}/reveal", 501)  # not paid yet
        assert (status, answer["error"]["code"]) == (409, "order_not_payable")
        assert [e for e in await page.shop.app.shop.audit_for(oid) if e.action == "reveal"] == []
        assert await page.available("GAME") == 1

        status, body = await page.call("POST", f"/orders/{oid}/cancel", 501)
        assert (status, body["order"]["status"]) == (200, "cancelled")
        assert await page.available("GAME") == 2  # released at once
        status, answer = await page.call("POST", f"/orders/{oid}/cancel", 501)
        assert (status, answer["error"]["code"]) == (409, "order_not_payable")
        status, answer = await page.call("POST", f"/orders/{oid}/pay", 501)  # nothing to pay any more
        assert (status, answer["error"]["code"]) == (409, "order_not_payable")


async def test_a_risk_challenge_is_answered_in_the_page(sqlite_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, sqlite_url, extra={"risk": {"new_account_points": 30}}) as page:
        await page.shop.stock(2)
        gid = await page.pid("GAME")
        status, answer = await page.order(gid, 1)
        assert (status, answer["error"]["code"]) == (403, "challenge_required")
        challenge = answer["error"]["challenge"]
        a, b = (int(x) for x in challenge["question"].split(" + "))
        assert str(a + b) in challenge["options"] and challenge["token"]
        wrong = next(o for o in challenge["options"] if o != str(a + b))
        status, answer = await page.order(gid, 1, challenge={"token": challenge["token"], "answer": wrong})
        assert (status, answer["error"]["code"]) == (403, "challenge_failed")
        assert answer["error"]["message"] == "That was not the right answer. Please try again."
        assert await page.available("GAME") == 2

        status, answer = await page.order(gid, 1)  # a new question
        challenge = answer["error"]["challenge"]
        a, b = (int(x) for x in challenge["question"].split(" + "))
        status, body = await page.order(gid, 1, challenge={"token": challenge["token"], "answer": str(a + b)})
        assert status == 201, body
        assert await page.available("GAME") == 1


async def test_me_tells_the_page_its_host_language_and_texts(sqlite_url: str, tmp_path: Path) -> None:
    async with mini_app(tmp_path, sqlite_url) as page:
        status, me = await page.call("GET", "/me", 601, auth=f"tma {init_data(601, 'zh-hans')}")
        assert status == 200
        assert (me["host"], me["language"], me["currency"], me["shop"]) == ("telegram", "zh_CN", "XTR", "TG Shop")
        assert all(k.startswith("webapp.") for k in me["strings"])
        # the buyer's choice in the chat (/language) wins over the app's language
        customer = await page.shop.app.shop.customer(Buyer("telegram", "602"), "zh")
        customer.language = "en"
        await page.shop.app.shop.save_customer(customer)
        status, me = await page.call("GET", "/me", 602, auth=f"tma {init_data(602, 'zh-hans')}")
        assert me["language"] == "en"
        status, body = await page.call("GET", "/catalog", 602, auth=f"tma {init_data(602, 'zh-hans')}")
        prices = {p["sku"]: (p["price"], p["buyable"]) for p in body["products"]}
        assert prices["GAME"] == ({"amount": 70, "currency": "XTR", "text": "⭐70"}, True)
        assert prices["NOSTARS"] == (None, False)


@pytest.mark.parametrize("library", ["aiogram", "ptb"])
async def test_the_menu_button_and_the_menus_open_shop_button_open_the_mini_app(library: str,
                                                                              tmp_path: Path) -> None:
    async with mini_app(tmp_path, library=library) as page:
        api = page.api
        call = await api.wait_for("setChatMenuButton")  # set at start
        assert call.params["menu_button"] == {"type": "web_app", "text": "Shop",
                                              "web_app": {"url": f"{PUBLIC}/app/"}}
        assert call.status == 200 and api.menu_buttons[None]["web_app"]["url"] == f"{PUBLIC}/app/"
        button = await page.shop.runtime.bot.get_chat_menu_button()  # as the library reads it back
        assert (button.type, button.web_app.url) == ("web_app", f"{PUBLIC}/app/")
        mark = api.mark()
        await page.shop.send(api.message_update(api.user(701), "/start"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 701, since=mark)
        assert menu.status == 200
        first = menu.params["reply_markup"]["inline_keyboard"][0]
        assert first == [{"text": "🛍 Open shop", "web_app": {"url": f"{PUBLIC}/app/"}}]


async def test_without_an_https_address_there_is_no_mini_app_button(tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"server": {"public_url": "http://127.0.0.1:8080"}}) as page:
        api = page.api
        await page.shop.send(api.message_update(api.user(701), "/start"))
        menu = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 701)
        assert all("web_app" not in b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row)
        await asyncio.sleep(0.2)  # the face was set in the background meanwhile
        assert api.calls("setChatMenuButton") == []


async def test_invoice_links_wait_out_telegram_and_a_refusal_releases_the_hold(sqlite_url: str,
                                                                               tmp_path: Path) -> None:
    slow = {"limits": {"overall_per_second": 1, "per_chat_burst": 100, "group_per_minute": 20}}
    async with mini_app(tmp_path, sqlite_url, telegram=slow) as page:
        await page.shop.stock(3)
        gid = await page.pid("GAME")
        # Invoice links are not messages: buyers do not queue behind the 1-a-second message rate
        started = time.monotonic()
        users = (801, 802, 803)
        answers = await asyncio.gather(*[page.order(gid, 1, user) for user in users])
        assert [status for status, _ in answers] == [201, 201, 201]
        # Queued behind a 1-a-second rate, the third would wait 2 s at least.
        assert time.monotonic() - started < 1.9
        for user, (_, body) in zip(users, answers, strict=True):  # the stock back
            status, _ = await page.call("POST", f"/orders/{body['order']['id']}/cancel", user)
            assert status == 200

        # Telegram asks to slow down: waited out, the buyer still gets the link
        page.api.fail_next("createInvoiceLink", 429, retry_after=1)
        status, body = await page.order(gid, 1, 804)
        assert status == 201 and body["pay"]["url"].startswith("https://t.me/$")
        await page.call("POST", f"/orders/{body['order']['id']}/cancel", 804)

        # Telegram refuses the link: the hold is released, the page told, nothing lost
        page.api.fail_next("createInvoiceLink", 400, description="Bad Request: something is wrong")
        status, answer = await page.order(gid, 1, 805)
        assert (status, answer["error"]["code"]) == (502, "pay_unavailable")
        assert answer["error"]["message"].startswith("The payment could not be started; nothing was held.")
        assert await page.available("GAME") == 3
        assert [o.status.value for o in await page.shop.app.shop.my_orders(Buyer("telegram", "805"))] == [
            "cancelled"]


@pytest.mark.parametrize(("library", "before", "after"), [
    ("aiogram", "https://old.example/app/", {"type": "default"}),  # the store's Mini App button, left from before
    ("ptb", "https://old.example/app/", {"type": "default"}),
    ("aiogram", "https://blog.example/shop", "kept"),  # a button the merchant set by hand for something else
])
async def test_with_the_mini_app_off_its_menu_button_goes_and_others_stay(library: str, before: str, after: Any,
                                                                          tmp_path: Path) -> None:
    async with FakeBotAPI(token=TOKEN) as api:
        button = {"type": "web_app", "text": "Shop", "web_app": {"url": before}}
        api.menu_buttons[None] = button
        async with Shopfront(api, tmp_path, library=library, telegram={"webapp": {"enabled": False}},
                             extra={"server": {"public_url": PUBLIC}}) as shop:
            face = shop.runtime.face.task  # type: ignore[attr-defined]
            assert face is not None and await face is True  # the bot's face, set at start, is done
            assert [c.status for c in api.calls("getChatMenuButton")] == [200]
        assert api.menu_buttons[None] == (button if after == "kept" else after)
