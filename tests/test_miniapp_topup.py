"""Direct top-up (直充) bought in the Mini App over real HTTP (`/app/api/`), on SQLite and PostgreSQL, against the real
store polling the fake Bot API and the local fake supplier: the product tells the page it needs an account (the
chat's prompt, the product's pattern); the order carries the account the buyer typed, checked by Shop.reserve; it is
paid through the bot's own pre-checkout and successful payment, and the supplier recharges that very account. A
missing or wrong account, an account where none belongs, or more than one top-up at once holds nothing. The WeChat
H5 shop (the same page and API, another host) takes the account the same way and pays by JSAPI."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.models import Buyer, OrderStatus
from core.supply import poll_topups
from tests.fake_supplier import FakeSupplier
from tests.fake_wechat_api import FakeWeChatAPI
from tests.test_miniapp_orders import Page, init_data, mini_app
from tests.test_telegram_topup import TOPUP
from tests.test_wechat_h5 import OPENID, H5Kit, fake_pay, token_of, v2_pay
from tests.wechat_harness import AES_KEY, APPID, CATALOG, SECRET, store_settings

PROMPT = "Send the account to top up (for a phone top-up: the mobile number, 11 digits)."
REFUSAL = "That account does not look right for this top-up. Please check it and enter it again."
GAME_ID = {"sku": "GAME-ID", "title": "Game coins", "price": 600, "stars": 40, "kind": "topup", "supplier": "up",
           "supplier_sku": "SUP-CM-30", "account_pattern": r"^[A-Za-z0-9_]{4,20}$"}  # a game id: letters too


@pytest.fixture
async def supplier() -> AsyncIterator[FakeSupplier]:
    server = await FakeSupplier().start()
    yield server
    await server.stop()


@asynccontextmanager
async def topup_app(tmp_path: Path, supplier: FakeSupplier, db_url: str | None = None) -> AsyncIterator[Page]:
    extra: dict[str, Any] = {"suppliers": {"up": supplier.config()}, "catalog": [TOPUP, GAME_ID]}
    async with mini_app(tmp_path, db_url, extra=extra) as page:
        yield page


def topups(supplier: FakeSupplier) -> list[dict[str, Any]]:
    return [params for path, params in supplier.requests if path == "/api/topup"]


async def until_status(page: Page, order_id: str, status: str, user: int = 501) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:  # the page polls its order
        code, body = await page.call("GET", f"/orders/{order_id}", user)
        assert code == 200, body
        if body["order"]["status"] == status or time.monotonic() > deadline:
            return body["order"]
        await asyncio.sleep(0.05)


async def test_a_topup_bought_in_the_mini_app_recharges_the_account_typed(db_url: str, tmp_path: Path,
                                                                          supplier: FakeSupplier) -> None:
    async with topup_app(tmp_path, supplier, db_url) as page:
        pid, gid = await page.pid("CM-30"), await page.pid("GAME")

        # the product says it needs an account: the chat's prompt, the pattern, a number pad, one per order
        status, body = await page.call("GET", f"/products/{pid}")
        assert status == 200, body
        product = body["product"]
        assert product["account"] == {"required": True, "hint": PROMPT, "pattern": r"^1[3-9]\d{9}$",
                                      "inputmode": "tel", "max_length": 128}
        assert (product["min_qty"], product["max_qty"], product["in_stock"]) == (1, 1, True)
        status, body = await page.call("GET", "/catalog")
        listed = {p["sku"]: p["account"] for p in body["products"]}
        assert listed["GAME"] is None and listed["CM-30"]["required"] is True
        assert listed["GAME-ID"]["inputmode"] == "text"  # a game id has letters: the ordinary keyboard
        status, body = await page.call("GET", f"/products/{pid}", 777, auth=f"tma {init_data(777, 'zh-hans')}")
        assert body["product"]["account"]["hint"] == "请发送要充值的账号(话费充值请输入 11 位手机号)。"
        assert (await page.call("GET", f"/products/{gid}"))[1]["product"]["account"] is None

        # the order carries the account as the supplier gets it (the spaces a buyer types dropped)
        status, body = await page.order(pid, 1, account="138 0013 8000")
        assert status == 201, body
        order, pay = body["order"], body["pay"]
        assert (order["status"], order["qty"], order["account"]) == ("held", 1, "13800138000")
        invoice = page.api.invoice_of(pay["url"])
        assert (invoice["payload"], invoice["currency"], invoice["total_amount"]) == (order["id"], "XTR", 200)
        held, _ = await page.shop.app.shop.order_for(order["id"], Buyer("telegram", "501"))
        assert (held.status, held.account) == (OrderStatus.HELD, "13800138000")
        assert topups(supplier) == []  # nothing is recharged before the payment

        # paid through the bot's own path: the supplier is asked to recharge that account, once
        api = page.api
        mark = api.mark()
        pre, paid = api.pay_link_updates(api.user(501, language_code="en"), pay["url"])
        await page.shop.send(pre)
        assert (await api.wait_for("answerPreCheckoutQuery", since=mark)).params["ok"] is True
        await page.shop.send(paid)
        await page.shop.app.shop.dispatcher.drain()
        request_id = f"T{order['id']}"
        assert supplier.orders[request_id].account == "13800138000" and supplier.purchases[request_id] == 1
        assert [t["account"] for t in topups(supplier)] == ["13800138000"]
        pending = await until_status(page, order["id"], "pending")
        assert (pending["status"], pending["account"]) == ("pending", "13800138000")

        # the supplier finishes: the page sees it done, the chat is told with the account
        supplier.finish(request_id, "success")
        assert await poll_topups(page.shop.app.shop) == 1
        await page.shop.app.shop.dispatcher.drain()
        assert (await until_status(page, order["id"], "delivered"))["account"] == "13800138000"
        told = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501
                                  and "13800138000" in c.params["text"] and "done" in c.params["text"], since=mark)
        assert order["id"] in told.params["text"]
        assert supplier.purchases[request_id] == 1 and api.calls("refundStarPayment") == []

        # a game id with letters fits its own product's pattern
        status, body = await page.order(await page.pid("GAME-ID"), 1, account="Ann_Plays42")
        assert (status, body["order"]["account"]) == (201, "Ann_Plays42"), body


async def test_a_wrong_or_missing_account_or_one_where_none_belongs_holds_nothing(
        db_url: str, tmp_path: Path, supplier: FakeSupplier) -> None:
    async with topup_app(tmp_path, supplier, db_url) as page:
        await page.shop.stock(3)
        pid, gid = await page.pid("CM-30"), await page.pid("GAME")

        # the chat's own refusal, in the buyer's language: 422 bad_account
        for account in ({}, {"account": ""}, {"account": "   "}, {"account": "12345"},
                        {"account": "+86 138 0013 8000"}, {"account": "1380013800"},
                        {"account": "23800138000"}):
            status, body = await page.order(pid, 1, **account)
            assert (status, body["error"]["code"], body["error"]["message"]) == (422, "bad_account", REFUSAL), \
                account
        status, body = await page.call("POST", "/orders", 777, body={"product_id": pid, "qty": 1, "account": "1"},
                                       auth=f"tma {init_data(777, 'zh-hans')}")
        assert (status, body["error"]["code"]) == (422, "bad_account")
        assert body["error"]["message"] == "充值账号格式不正确,请检查后重新输入。"

        # a malformed account is a malformed request: 400, the field named
        for account in (13800138000, None, ["13800138000"], {"n": "13800138000"}, "1" * 129):
            status, body = await page.order(pid, 1, account=account)
            assert (status, body["error"]["code"], body["error"]["field"]) == (400, "bad_request", "account"), \
                account
            assert body["error"]["message"] == "The request was not understood; nothing was ordered."

        # an account for a product that is not a top-up: 400, and said so
        status, body = await page.order(gid, 1, account="13800138000")
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, "bad_request", "account")
        assert body["error"]["message"] == "This product is not a top-up and takes no account; nothing was ordered."
        assert await page.available("GAME") == 3

        # one recharge an order
        status, body = await page.order(pid, 2, account="13800138000")
        assert (status, body["error"]["code"], body["error"]["message"]) == (
            422, "bad_quantity", "Choose a quantity from 1 to 1.")

        assert await page.held_by(501) == [] and await page.held_by(777) == []
        assert page.api.calls("createInvoiceLink") == [] and topups(supplier) == []


class TopupH5Kit(H5Kit):
    """The WeChat H5 shop (tests/test_wechat_h5.py) with the top-up product and its supplier in the catalogue."""

    def __init__(self, api: FakeWeChatAPI, tmp_path: Path, supplier: FakeSupplier, pay: dict[str, Any]) -> None:
        super().__init__(api, tmp_path, pay=pay)
        wechat = {"aes_key": AES_KEY, "h5": {"oauth_base": api.base},
                  "pay": {**pay, "notify_url": f"{self.url}/wechat/pay/notify"}}
        self.settings = store_settings(api, tmp_path, wechat=wechat, extra={
            "server": {"host": "127.0.0.1", "port": self.port, "public_url": self.url},
            "suppliers": {"up": supplier.config()}, "catalog": [*CATALOG, TOPUP]})


async def test_the_same_topup_in_the_wechat_h5_shop_is_paid_by_jsapi(tmp_path: Path, supplier: FakeSupplier) -> None:
    """One page, two hosts: the WeChat buyer's account goes the same way, paid by JSAPI in yuan."""
    pay = await fake_pay(2)
    try:
        async with FakeWeChatAPI(APPID, SECRET) as api, TopupH5Kit(api, tmp_path, supplier,
                                                                   v2_pay(tmp_path, pay)) as kit:
            pay.notify_target = kit.url + "/wechat/pay/notify"
            api.oauth_openid = OPENID
            token = token_of((await kit.open_shop())[1])
            status, catalog = await kit.api_get("/catalog", token)
            topup = next(p for p in catalog["products"] if p["sku"] == "CM-30")
            assert topup["price"]["amount"] == 3000 and topup["account"]["pattern"] == r"^1[3-9]\d{9}$"

            status, refused = await kit.api_post("/orders", token, {"product_id": topup["id"], "qty": 1,
                                                                    "account": "1234"})
            assert (status, refused["error"]["code"]) == (422, "bad_account")
            assert pay.requests_to("/pay/unifiedorder") == []  # nothing to pay for

            status, placed = await kit.api_post("/orders", token, {"product_id": topup["id"], "qty": 1,
                                                                   "account": "139-0000-1111"})
            assert status == 201, placed
            order_id, params = placed["order"]["id"], placed["pay"]["params"]
            assert placed["order"]["account"] == "13900001111"
            (made,) = pay.requests_to("/pay/unifiedorder")
            assert (made["trade_type"], made["openid"], made["total_fee"]) == ("JSAPI", OPENID, "3000")

            await pay.pay_prepay(params["package"].removeprefix("prepay_id="), OPENID, params=params)
            await kit.idle()
            await kit.app.shop.dispatcher.drain()
            (asked,) = topups(supplier)
            assert (asked["request_id"], asked["account"]) == (f"T{order_id}", "13900001111")
            status, body = await kit.api_get(f"/orders/{order_id}", token)
            assert (body["order"]["status"], body["order"]["account"]) == ("pending", "13900001111")
    finally:
        await pay.stop()
